"""Trajectory tokens from PointMaze Minari datasets, for diffusion-forcing planners.

A step is the 6 features ``[x, y, vx, vy, ax, ay]``: the ball's state (``observation`` of the
dict observation) and the action taken in it. A token stacks ``frame_stack`` consecutive steps
(``token_dim = 6 * frame_stack``); a window is ``num_tokens`` consecutive tokens inside one episode.
Features are standardised per dimension with the dataset's mean and standard deviation
(``Normalizer``), which the planner's checkpoint stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import minari
import numpy as np
import torch
from torch.utils.data import Dataset

from worldsim.errors import WorldsimError

STATE_DIM, ACTION_DIM = 4, 2
STEP_DIM = STATE_DIM + ACTION_DIM


@dataclass
class Normalizer:
    """Per-feature standardisation of steps: ``(x - mean) / std`` on ``[..., STEP_DIM]`` arrays."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> Normalizer:
        return cls(np.asarray(values["mean"], np.float32), np.asarray(values["std"], np.float32))

    def normalize(self, steps):
        return (steps - self._like(self.mean, steps)) / self._like(self.std, steps)

    def denormalize(self, steps):
        return steps * self._like(self.std, steps) + self._like(self.mean, steps)

    @staticmethod
    def _like(values: np.ndarray, reference):
        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device) if isinstance(reference, torch.Tensor) else values


def episode_steps(episode) -> np.ndarray:
    """``float32[T, 6]``: the state before each step and the action taken (the final state has none)."""
    observations = episode.observations
    if not isinstance(observations, dict) or "observation" not in observations:
        raise WorldsimError(f"episode {episode.id} has no dict observation with an 'observation' key: use a PointMaze dataset")
    states = np.asarray(observations["observation"], np.float32)[:-1]
    actions = np.asarray(episode.actions, np.float32)
    if states.shape[1:] != (STATE_DIM,) or actions.shape[1:] != (ACTION_DIM,):
        raise WorldsimError(
            f"episode {episode.id} has states {states.shape} and actions {actions.shape}: expected PointMaze's (T, 4) and (T, 2)"
        )
    return np.concatenate([states, actions], axis=1)


def tokens_to_steps(tokens, frame_stack: int):
    """``[..., T, frame_stack * 6] -> [..., T * frame_stack, 6]`` (numpy or torch)."""
    return tokens.reshape(*tokens.shape[:-2], tokens.shape[-2] * frame_stack, STEP_DIM)


def steps_to_tokens(steps, frame_stack: int):
    """``[..., T * frame_stack, 6] -> [..., T, frame_stack * 6]``."""
    return steps.reshape(*steps.shape[:-2], steps.shape[-2] // frame_stack, frame_stack * STEP_DIM)


class TrajectoryWindows(Dataset):
    """Every window of ``num_tokens * frame_stack`` consecutive steps inside the episodes of PointMaze
    dataset(s); ``windows[i]`` is ``float32[num_tokens, frame_stack * 6]``, normalised."""

    def __init__(
        self,
        dataset: minari.MinariDataset | Sequence[minari.MinariDataset],
        num_tokens: int,
        frame_stack: int,
        normalizer: Normalizer | None = None,
    ):
        if num_tokens < 1 or frame_stack < 1:
            raise WorldsimError(f"num_tokens and frame_stack must be >= 1, got {num_tokens} and {frame_stack}")
        datasets = [dataset] if isinstance(dataset, minari.MinariDataset) else list(dataset)
        self.dataset_ids = [d.id for d in datasets]
        self.num_tokens, self.frame_stack = num_tokens, frame_stack
        self.length = num_tokens * frame_stack
        self.episodes = [episode_steps(ep) for d in datasets for ep in d.iterate_episodes()]
        if normalizer is None:
            everything = np.concatenate(self.episodes)
            normalizer = Normalizer(everything.mean(axis=0), everything.std(axis=0).clip(min=1e-3))
        self.normalizer = normalizer
        starts = [
            np.stack([np.full(n, i), np.arange(n)], axis=1) for i, ep in enumerate(self.episodes) if (n := len(ep) - self.length + 1) > 0
        ]
        if not starts:
            raise WorldsimError(
                f"no episode of {', '.join(self.dataset_ids)} has {self.length} steps: shorten the plan (num_tokens * frame_stack)"
            )
        self.windows = np.concatenate(starts)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        episode, start = self.windows[index]
        steps = self.normalizer.normalize(self.episodes[episode][start : start + self.length])
        return torch.from_numpy(steps_to_tokens(steps, self.frame_stack).astype(np.float32))
