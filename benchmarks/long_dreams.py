"""What the alignment-horizon benchmarks share: long scripted dreams, real step pairs, and a judge of degraded frames.

``alignment_horizon.py`` scores long dreams with a critic; ``long_dream_critic.py`` trains a critic
on long dreams. Both play the same dreams (``scripted_dreams``), read real steps the same way
(``real_pairs``) and, for a judge blind to the sampler's faint grain, degrade frames the same way
(``DegradedCritic``).
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from worldsim.agents import make_agent
from worldsim.agents.dream_driver import SingleDreamView, dream_engine

import worldsim  # noqa: F401
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.engine.dream_engine import DreamStep


@torch.no_grad()
def scripted_dreams(adapter: str | None, dreams: int, steps: int, epsilon: float, seed: int) -> Iterator[tuple[np.ndarray, torch.Tensor, DreamStep]]:
    """``steps`` steps of ``dreams`` dreams of ``worldsim/Mario-v0`` (with ``adapter`` merged, if
    any) from its start states, the scripted runner with ``epsilon`` random actions playing each,
    never reset (a predicted death or flag is dreamed past). Yields per step the frame each dream
    continued from (``uint8[N, H, W, C]`` and ``float[N, C, H, W]``) and the engine's step. The same
    seed gives the same starts and sampling noise with and without an adapter."""
    env = gym.make_vec("worldsim/Mario-v0", num_envs=dreams, adapter=adapter)
    engine = dream_engine(env)
    env.reset(seed=seed)
    agents = [make_agent("scripted", SingleDreamView(env), epsilon=epsilon) for _ in range(dreams)]
    for index, agent in enumerate(agents):
        agent.reset(seed + index)
    observations, info = engine.observations(), engine.reset_info()
    try:
        for _ in range(steps):
            actions = np.array([agent.act(observations[i], {key: value[i] for key, value in info.items()}) for i, agent in enumerate(agents)])
            previous_observations, previous_frames = observations, engine.frames[:, -1]
            dreamed = engine.step(actions)
            yield previous_observations, previous_frames, dreamed
            observations, info = dreamed.observations, dreamed.info
    finally:
        env.close()


def real_pairs(dataset_id: str, count: int, seed: int) -> torch.Tensor:
    """``count`` random real steps of ``dataset_id`` as ``uint8[N, 2, H, W, C]`` (previous frame, next frame)."""
    windows = SequenceDataset(load_dataset(dataset_id), 2)
    chosen = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)), replace=False)
    return torch.stack([windows[int(i)]["frames"] for i in chosen])


def degrade(frames: torch.Tensor, blur: float, levels: int) -> torch.Tensor:
    """``float[B, C, H, W]`` in ``[-1, 1]`` blurred (Gaussian, ``blur`` pixels; 0: none) and
    re-quantised to ``levels`` values per channel (0: none): what a judge sees when it must not
    rely on the sampler's faint grain."""
    if blur > 0:  # separable Gaussian, reflected borders (torchvision is not a dependency)
        radius = int(3 * blur)
        taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=frames.dtype) ** 2) / (2 * blur**2))
        taps = (taps / taps.sum()).to(frames.device)
        channels = frames.shape[1]
        frames = nn.functional.pad(frames, (radius, radius, radius, radius), mode="reflect")
        frames = nn.functional.conv2d(frames, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        frames = nn.functional.conv2d(frames, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    if levels > 0:
        frames = torch.round((frames + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1
    return frames


class DegradedCritic(nn.Module):
    """A realism critic that judges degraded frames (``degrade``), with the critic's call signature."""

    def __init__(self, critic: nn.Module, blur: float, levels: int):
        super().__init__()
        self.critic, self.blur, self.levels = critic, blur, levels

    def forward(self, previous: torch.Tensor, next_frame: torch.Tensor) -> torch.Tensor:
        return self.critic(degrade(previous, self.blur, self.levels), degrade(next_frame, self.blur, self.levels))
