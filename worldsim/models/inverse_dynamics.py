"""An inverse-dynamics model: which action made this transition? The dream's controllability probe.

A small CNN reads three consecutive frames (the two before a step and the one it produced: the
first pair gives the velocity an action changes) and classifies the step's action. Trained on real
transitions only, it is then asked about dreamed ones (MineWorld / GameWorld's protocol): if the
dream draws what an action does, the classifier recognises the action about as often as on real
frames; a dream that ignores the action leaves it guessing.
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
    frames: int = 3  # consecutive frames read: the last is the one the step produced
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])  # one stride-2 conv each
    hidden: int = 256


class InverseDynamicsModel(nn.Module):
    """``forward(frames float[B, F, C, H, W] in [-1, 1])`` -> action logits ``float[B, num_actions]``."""

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
