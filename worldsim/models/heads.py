"""What a step did besides drawing a frame: its reward, how far Mario moved, and whether it ended.

The denoiser only generates pixels; the dream env also has to return a reward and a termination.
``TransitionHeads`` is a small CNN that reads the context frames and the frame the step produced
(real ones in training, generated ones in the dream) plus the step's action, and predicts

* ``reward``: the env's reward for the step (gym-super-mario-bros: rightward progress, clock
  penalty, -25 on death), regressed;
* ``x_delta``: how many pixels Mario moved right (``x_pos`` label difference), regressed, so the
  dream can report an ``x_pos`` in ``info``;
* ``end``: logits of three classes, ``END_CLASSES`` = running / death / flag (gym-super-mario-bros
  ends an episode when Mario starts dying or touches the flag).

It is separate from the denoiser (DIAMOND also uses a separate reward/end model): the denoiser's
noisy input is the wrong thing to classify, and a clean generated frame is exactly what the env has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

END_CLASSES = ("running", "death", "flag")
RUNNING, DEATH, FLAG = range(3)


@dataclass
class HeadsConfig:
    """Architecture of ``TransitionHeads``; stored in a checkpoint's config.json."""

    channels: tuple[int, ...] = (32, 64, 64, 64)  # one stride-2 conv each: 64x64 -> 4x4
    hidden: int = 256
    action_dim: int = 32


class TransitionHeads(nn.Module):
    """``forward(frames float[B, K+1, C, H, W] in [-1, 1], action int64[B])`` -> dict with
    ``reward float[B]``, ``x_delta float[B]`` and ``end float[B, 3]`` (logits).

    ``frames`` are the K context frames followed by the frame the step produced; ``action`` is the
    action of that step.
    """

    def __init__(
        self,
        config: HeadsConfig,
        num_actions: int,
        num_frames: int,
        image_channels: int = 3,
        image_size: int = 64,
    ):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = num_frames * image_channels
        for out_channels in config.channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
                nn.SiLU(),
            ]
            in_channels = out_channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(config.channels)
        self.action_embedding = nn.Embedding(num_actions, config.action_dim)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels * side * side + config.action_dim, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, 2 + len(END_CLASSES)),
        )

    def forward(self, frames: torch.Tensor, action: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(frames.flatten(1, 2))
        out = self.mlp(torch.cat([features, self.action_embedding(action)], dim=1))
        return {"reward": out[:, 0], "x_delta": out[:, 1], "end": out[:, 2:]}
