"""What a reward scores: one generated step (its history, its action, the frame), and the ``Reward`` interface.

Every reward reads the same ``Transition`` and returns ``Scores``: a value per sample and whether
the value is defined for that sample (the consistency probe only reads clips where one action was
held; presence only tracks a player seen in the previous frame). ``per_sample`` turns the scores of
several rewards into one number per sample that both the reward-gradient aligner (its mean is the
loss) and the policy-gradient baseline (per-sample advantages) use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch


@dataclass
class Transition:
    """A batch of generated steps.

    * ``history float[B, T, C, H, W]`` in ``[-1, 1]``: the frames before the generated one, oldest
      first; the last K were the denoiser's context. ``T`` is at least every scoring reward's
      ``history_frames`` (an episode start repeats its first frame, as the training windows do);
    * ``history_actions int64[B, T]``: ``history_actions[:, i]`` is the action whose step produced
      ``history[:, i]`` (0 where unknown);
    * ``action int64[B]``: the action of the generated step;
    * ``next_frame float[B, C, H, W]`` in ``[-1, 1]``: the generated frame, carrying gradients when
      the aligner asks for them.
    """

    history: torch.Tensor
    history_actions: torch.Tensor
    action: torch.Tensor
    next_frame: torch.Tensor

    def __post_init__(self):
        batch = self.next_frame.shape[0]
        if not (self.history.shape[0] == self.history_actions.shape[0] == self.action.shape[0] == batch):
            raise ValueError(
                f"a Transition's tensors disagree on the batch size: {self.history.shape}, {self.action.shape}, {self.next_frame.shape}"
            )
        if self.history.shape[1] != self.history_actions.shape[1] or self.history.shape[2:] != self.next_frame.shape[1:]:
            raise ValueError(
                f"history {tuple(self.history.shape)} / actions {tuple(self.history_actions.shape)} do not fit next_frame {tuple(self.next_frame.shape)}"
            )


class Scores(NamedTuple):
    """A reward's ``values float[B]`` and ``valid bool[B]`` (where the value is defined)."""

    values: torch.Tensor
    valid: torch.Tensor


class Reward(Protocol):
    """A differentiable score of generated transitions (an ``nn.Module`` whose weights never train here)."""

    name: str
    history_frames: int  # frames of history it reads before the generated one

    def score(self, transition: Transition) -> Scores: ...


def per_sample(scores: dict[str, Scores], weights: dict[str, float]) -> torch.Tensor:
    """``float[B]``: the weighted sum of the rewards, each filled in where it is undefined with its
    mean over the samples where it is defined (0 where it is defined nowhere).

    So ``per_sample(...).mean()`` is exactly the weighted sum of each reward's mean over its valid
    samples, and a sample where a reward is undefined gets no advantage from it.
    """
    total = None
    for name, (values, valid) in scores.items():
        valid = valid.to(values.dtype)
        count = valid.sum()
        mean = (values * valid).sum() / count.clamp_min(1.0)
        filled = torch.where(valid > 0, values, mean.expand_as(values))
        contribution = weights.get(name, 1.0) * filled
        total = contribution if total is None else total + contribution
    if total is None:
        raise ValueError("per_sample needs at least one reward's scores")
    return total


def valid_mean(scores: Scores) -> float:
    """A reward's mean over its valid samples (NaN where none is), for reports."""
    valid = scores.valid
    return float(scores.values.detach()[valid].mean()) if bool(valid.any()) else float("nan")
