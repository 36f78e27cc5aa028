"""Fixed-length windows of consecutive steps from Minari episodes, for training world models.

A window never crosses an episode boundary: each one lies inside a single episode. Frames and
actions are aligned the way the dream env's ``reset(options=...)`` takes them: ``actions[i]`` is
the action whose step produced ``frames[i]`` (the first frame of an episode has action 0, "nothing
before"). So for Minari's ``observations[0..T]`` and ``actions[0..T-1]``, frame ``i`` pairs with
``actions[i - 1]``.

A dataset of a multi-agent game stores a joint action per step (``MultiDiscrete``, one action per
agent); windows carry it as one index of the product space, C order, as
``worldsim.core.game.GameDescription.joint_action`` defines it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import minari
import numpy as np
import torch
from gymnasium.spaces import MultiDiscrete
from torch.utils.data import Dataset, WeightedRandomSampler

from worldsim.errors import WorldsimError


@dataclass
class EpisodeArrays:
    """One episode in memory: ``frames uint8[T+1, H, W, C]``, ``actions int64[T+1]`` (aligned as
    above), ``rewards float32[T+1]`` and ``ends bool[T+1]`` (reward and termination of the step
    that produced each frame; 0 and False for the first), and ``labels`` (each ``[T+1]``)."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    ends: np.ndarray
    labels: dict[str, np.ndarray]

    @classmethod
    def from_minari(cls, episode, label_keys: Sequence[str], action_counts: Sequence[int] | None = None) -> EpisodeArrays:
        """One Minari episode; ``action_counts`` (a ``MultiDiscrete`` space's ``nvec``) turns joint
        actions ``[T, agents]`` into one index each."""
        steps = len(episode.actions)
        missing = [key for key in label_keys if key not in episode.infos]
        if missing:
            raise WorldsimError(
                f"episode {episode.id} has no info labels {missing}: collect the dataset with `worldsim collect` "
                "(it records the env's info) or drop those labels"
            )

        def shifted(values, dtype) -> np.ndarray:
            out = np.zeros(steps + 1, dtype)
            out[1:] = np.asarray(values, dtype).reshape(steps)
            return out

        actions = np.asarray(episode.actions, np.int64)
        if action_counts is not None:
            actions = np.ravel_multi_index(tuple(actions.reshape(steps, len(action_counts)).T), tuple(action_counts))
        return cls(
            frames=np.asarray(episode.observations),
            actions=shifted(actions, np.int64),
            rewards=shifted(episode.rewards, np.float32),
            ends=shifted(episode.terminations, np.bool_),
            labels={key: np.asarray(episode.infos[key]) for key in label_keys},
        )


@dataclass
class WindowWeight:
    """Windows whose last frame's ``label`` lies in ``[low, high)`` are drawn ``weight`` times as
    often: a rare moment the model gets wrong (Pong: the ball at a paddle) seen more in training."""

    label: str
    low: float
    high: float
    weight: float


class SequenceDataset(Dataset):
    """All windows of ``length`` consecutive frames inside the episodes of a Minari dataset.

    ``dataset[i]`` is a dict of tensors: ``frames uint8[length, H, W, C]``, ``actions
    int64[length]``, ``rewards float32[length]``, ``ends bool[length]`` and one ``[length]`` tensor
    per label key. Episodes shorter than ``length`` frames give no window.

    Args:
        dataset: a Minari dataset with image observations (``worldsim collect`` writes these), or
            several, whose episodes are pooled; or another ``SequenceDataset``, whose episodes
            (already in memory) these windows share.
        length: frames per window, e.g. context length + 1 for next-frame training, or
            context length + unroll steps for autoregressive training.
        label_keys: ``info`` keys to carry along (Mario: ``x_pos``, ``life``, ``is_dying``, ...).
        pad_start: windows may also begin up to this many frames before an episode's first frame;
            the missing frames repeat the first frame, with action 0 (and zero reward, no end, the
            first frame's labels). A model trained on such windows can start a dream from a single
            real frame, which is what a real env's ``reset`` gives.
        episodes: indices of the episodes that give windows (default: all), e.g. to hold some
            episodes out of training for validation.
        hold_end: windows of an episode that ended in a termination (not a truncation: that game
            went on) may also run up to this many frames past its last frame; the missing frames
            hold the last one, with its action, end and labels, and zero reward. The game is over
            there, so a frame after it is still the end: an end classifier trained on such windows
            also calls an end a dream drew without calling it on the step itself.
    """

    def __init__(
        self,
        dataset: minari.MinariDataset | Sequence[minari.MinariDataset] | SequenceDataset,
        length: int,
        label_keys: Sequence[str] = (),
        pad_start: int = 0,
        episodes: Sequence[int] | None = None,
        hold_end: int = 0,
    ):
        if length < 1:
            raise WorldsimError(f"window length must be >= 1, got {length}")
        if not 0 <= pad_start < length:
            raise WorldsimError(f"pad_start must be in [0, {length - 1}] for windows of {length} frames, got {pad_start}")
        if hold_end < 0:
            raise WorldsimError(f"hold_end must be >= 0 (frames held past an episode's end), got {hold_end}")
        self.length = int(length)
        self.label_keys = tuple(label_keys)
        self.pad_start = int(pad_start)
        if isinstance(dataset, SequenceDataset):  # other windows over episodes already in memory
            missing = set(self.label_keys) - set(dataset.label_keys)
            if missing:
                raise WorldsimError(f"the episodes in memory carry no labels {sorted(missing)}: load them with those label keys")
            self.dataset_ids, self.episodes = dataset.dataset_ids, dataset.episodes
        else:
            datasets = [dataset] if isinstance(dataset, minari.MinariDataset) else list(dataset)
            self.dataset_ids = [d.id for d in datasets]
            self.episodes = [
                EpisodeArrays.from_minari(ep, self.label_keys, _joint_action_counts(d)) for d in datasets for ep in d.iterate_episodes()
            ]
        # (episode index, first frame) of every window; frames [start, start + length) of one
        # episode, where a negative start means padding before the first frame, and frames past
        # the last one hold it (hold_end).
        starts = []
        for i in range(len(self.episodes)) if episodes is None else episodes:
            count = len(self.episodes[i].frames) - self.length + 1 + self.pad_start  # windows that reach no further than its end
            if count > 0:
                count += int(hold_end) if self.episodes[i].ends[-1] else 0
                starts.append(np.stack([np.full(count, i), np.arange(count) - self.pad_start], axis=1))
        if not starts:
            raise WorldsimError(
                f"no episode of {', '.join(self.dataset_ids)} has {self.length - self.pad_start} frames: collect longer episodes or shorten the window"
            )
        self.windows = np.concatenate(starts).astype(np.int64)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        episode_index, start = self.windows[index]
        episode = self.episodes[episode_index]
        steps = np.arange(start, start + self.length)
        window = np.clip(steps, 0, len(episode.frames) - 1)  # padding repeats the first frame, holding the last
        padded = torch.from_numpy(steps < 0)
        item = {
            "frames": torch.from_numpy(episode.frames[window]),
            "actions": torch.from_numpy(episode.actions[window]).masked_fill(padded, 0),
            "rewards": torch.from_numpy(episode.rewards[window]).masked_fill(padded | torch.from_numpy(steps > window), 0.0),
            "ends": torch.from_numpy(episode.ends[window]).masked_fill(padded, False),
        }
        item |= {key: torch.from_numpy(episode.labels[key][window]) for key in self.label_keys}
        return item

    def target_actions(self) -> np.ndarray:
        """The action that produced each window's last frame (the one a next-frame model predicts)."""
        return self._at_last_frame(lambda episode: episode.actions)

    def target_ends(self) -> np.ndarray:
        """Whether each window's last frame ended its episode (a death or the flag)."""
        return self._at_last_frame(lambda episode: episode.ends)

    def _at_last_frame(self, values) -> np.ndarray:
        last = self.windows[:, 1] + self.length - 1
        # a window held past its episode's end (hold_end) reads the last frame's value
        return np.array(
            [values(self.episodes[e])[min(f, len(self.episodes[e].frames) - 1)] for e, f in zip(self.windows[:, 0], last, strict=True)]
        )

    def weighted_sampler(
        self,
        num_samples: int,
        generator: torch.Generator | None = None,
        *,
        balance_actions: bool = True,
        end_weight: float = 1.0,
        label_weights: Sequence[WindowWeight] = (),
    ) -> WeightedRandomSampler:
        """Draws windows with replacement, optionally so that every action is the target action
        equally often, episode ends ``end_weight`` times more often, and windows whose last frame's
        label lies in a ``WindowWeight``'s range that many times more often (the factors multiply).

        Agents that mostly run right leave NOOP, left and jumping in place rare; a world model
        trained on such data ignores them. Balanced, each window is weighted by 1 / (count of its
        target action). ``end_weight`` multiplies the weight of windows whose last frame ends the
        episode: deaths and flags are under 1% of frames, yet the end model must not miss them.
        """
        actions = self.target_actions()
        weights = 1.0 / np.bincount(actions)[actions] if balance_actions else np.ones(len(actions))
        weights = np.where(self.target_ends(), weights * end_weight, weights)
        for rule in label_weights:
            if rule.label not in self.label_keys:
                raise WorldsimError(f"a window weight names the label {rule.label!r}; these windows carry {list(self.label_keys)}")
            values = self._at_last_frame(lambda episode, key=rule.label: episode.labels[key])
            weights = np.where((values >= rule.low) & (values < rule.high), weights * rule.weight, weights)
        return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples, replacement=True, generator=generator)


def _joint_action_counts(dataset: minari.MinariDataset) -> tuple[int, ...] | None:
    """A ``MultiDiscrete`` action space's ``nvec`` (one action per agent), None for ``Discrete``."""
    space = dataset.spec.action_space
    return tuple(int(n) for n in space.nvec) if isinstance(space, MultiDiscrete) else None
