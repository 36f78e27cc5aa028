"""A classifier of episode ends that looks at the last few frames: did this step kill Mario, reach
the flag, or let the ball through?

The recurrent end model (``worldsim.models.end_model``) reads each transition through a CNN that
flattens a 4x4 map, and an LSTM. That learnt rewards and progress, but not ends: at a Mario death
the game has drawn Mario a pixel or two from a Goomba, at a Pong miss the ball sits a few pixels
past the paddle, and both models scored every step near the prior. An end is a small thing somewhere
in the frame, the same wherever it happens, so this classifier

* reads the step's frame with the frames before it and their differences (motion), plus two
  coordinate channels (a miss happens at an edge, a pit death at the bottom);
* keeps the resolution to 8x8 with 3x3 convs between the stride-2 ones, and pools the map by its
  maximum (is it anywhere?) and mean, so it sees one small event as well at any place;
* has no recurrent state: it reads a bounded window of frames that the dream holds anyway (its
  context), so it cannot drift over a dream of hundreds of steps, and one generated frame still
  never decides alone (it is judged with the frames before it).

``confirm_steps`` (for the dream engine): how many consecutive steps must be called an end before
the episode ends.

``decision_bias`` is added to the logit of each end class after the first at inference. It undoes
the oversampling of ends in training and sets the operating point: training picks it on episodes
the classifier never trained on, for the best F1 of each end class (``best_f1_bias``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn


@dataclass
class EndClassifierConfig:
    """Architecture of ``EndClassifier``, and how its outputs are read (``READING_KEYS``); stored in
    a checkpoint's config.json."""

    READING_KEYS: ClassVar[tuple[str, ...]] = ("decision_bias", "confirm_steps")  # the weights do not depend on these

    frames: int = 5  # the step's frame and the frames before it (at most the context length + 1)
    channels: tuple[int, ...] = (32, 64, 96)  # a 4x4 stride-2 conv then a 3x3 conv each: 64 -> 32 -> 16 -> 8
    action_dim: int = 16
    hidden: int = 128
    num_end_classes: int = 3
    decision_bias: list[float] = field(default_factory=list)  # per end class after the first; set by calibrate
    # A dream's episode ends when the classifier calls an end on this many consecutive steps: a
    # dreamed bounce can hide the ball in the paddle for a frame, a miss leaves the field empty.
    # Like the bias, an inference setting (the weights do not depend on it).
    confirm_steps: int = 1


class EndClassifier(nn.Module):
    """``forward(frames float[B, F, C, H, W] in [-1, 1], action int64[B])`` -> end logits
    ``float[B, classes]``: ``frames[:, -1]`` is the step's frame, ``action`` the step's action."""

    def __init__(self, config: EndClassifierConfig, num_actions: int, image_channels: int = 3):
        super().__init__()
        self.config = config
        in_channels = (2 * config.frames - 1) * image_channels + 2  # frames, their differences, y and x
        layers: list[nn.Module] = []
        for out_channels in config.channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv2d(out_channels, out_channels, 3, padding=1),
                nn.SiLU(),
            ]
            in_channels = out_channels
        self.encoder = nn.Sequential(*layers)
        self.action_embedding = nn.Embedding(num_actions, config.action_dim)
        self.head = nn.Sequential(
            nn.Linear(2 * in_channels + config.action_dim, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.num_end_classes)
        )

    def forward(self, frames: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        batch, count, _, height, width = frames.shape
        if count != self.config.frames:
            raise ValueError(f"EndClassifier reads {self.config.frames} frames, got {count}")
        ys = torch.linspace(-1, 1, height, device=frames.device, dtype=frames.dtype)
        xs = torch.linspace(-1, 1, width, device=frames.device, dtype=frames.dtype)
        coordinates = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(batch, 2, height, width)
        motion = frames[:, 1:] - frames[:, :-1]
        features = self.encoder(torch.cat([frames.flatten(1, 2), motion.flatten(1, 2), coordinates], dim=1))
        pooled = torch.cat([features.amax(dim=(2, 3)), features.mean(dim=(2, 3))], dim=1)
        logits = self.head(torch.cat([pooled, self.action_embedding(action)], dim=1))
        if self.training or not self.calibrated:
            return logits
        bias = torch.as_tensor([0.0, *self.config.decision_bias], device=logits.device, dtype=logits.dtype)
        return logits + bias

    @property
    def calibrated(self) -> bool:
        """Whether its decision bias is set (after training): only then are its outputs decisions."""
        return bool(self.config.decision_bias)

    def last_step(self, frames: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The end logits of the last step of a longer window ``frames float[B, L, C, H, W]`` (a
        dream's context and its new frame): ``forward`` on its last ``config.frames`` frames."""
        return self(frames[:, frames.shape[1] - self.config.frames :], action)


def best_f1_bias(
    end_logit_margin: np.ndarray, is_end: np.ndarray, candidates: np.ndarray | None = None
) -> tuple[float, float, float, float]:
    """The bias ``b`` for which "``margin + b > 0``" best separates one end class from the rest.

    ``end_logit_margin float[N]``: the class's logit minus the running class's, per step;
    ``is_end bool[N]``. Returns ``(bias, f1, precision, recall)`` at the best F1 (ties: the
    smallest bias, the most conservative). Without any end in the data the bias stays 0.
    """
    if not is_end.any():
        return 0.0, float("nan"), float("nan"), float("nan")
    if candidates is None:
        candidates = np.linspace(-12.0, 12.0, 241)
    best = (0.0, -1.0, float("nan"), float("nan"))
    for bias in candidates:
        called = end_logit_margin + bias > 0
        hits = int((called & is_end).sum())
        precision = hits / called.sum() if called.any() else 0.0
        recall = hits / is_end.sum()
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        if f1 > best[1] + 1e-12:
            best = (float(bias), float(f1), float(precision), float(recall))
    return best
