"""An inverse-dynamics model: which action was held? The dream's controllability probe.

A small CNN reads a short clip: ``frames - held_steps`` frames before, then the ``held_steps``
frames that one action, held, produced, and classifies that action. One step is too little to
see: in 4 NES frames an action mostly changes Mario's speed, by a pixel or less at 64x64 (a
one-step probe scored 15% on real held-out steps, at chance), while 4 held steps move him by
several. Trained on real clips only, it is then asked about dreamed ones (MineWorld / GameWorld's
protocol): if the dream draws what an action does, the probe recognises the action about as often
as on real frames; a dream that ignores the action leaves it guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from worldsim.core.checkpoint_kinds import INVERSE_DYNAMICS

IDM_KIND = INVERSE_DYNAMICS


@dataclass
class InverseDynamicsConfig:
    num_actions: int = 7
    image_channels: int = 3
    image_size: int = 64
    frames: int = 6  # consecutive frames read
    held_steps: int = 4  # the last held_steps frames were produced by one action, held
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])  # one stride-2 conv each
    hidden: int = 256


class InverseDynamicsModel(nn.Module):
    """``forward(frames float[B, F, C, H, W] in [-1, 1])`` -> logits ``float[B, num_actions]`` of the
    action held over the last ``held_steps`` frames."""

    def __init__(self, config: InverseDynamicsConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.frames * config.image_channels
        for out_channels in config.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.GroupNorm(8, out_channels), nn.SiLU()]
            in_channels = out_channels
        side = config.image_size // 2 ** len(config.channels)
        self.net = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(in_channels * side * side, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.num_actions)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.flatten(1, 2))
