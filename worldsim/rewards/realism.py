"""The realism reward: a small critic trained to tell real steps from dreamed ones; its logit is the reward.

The critic reads a step as a pair (the frame before, the next frame), not the next frame alone: on
the same context, a real and a dreamed next frame differ in what moved and how sharply (Mario
averaged into a smudge, grain on the sky), which is what the dream must learn to draw; the pair also
lets it judge motion, which a single frame cannot show. It is trained by
``worldsim train --model realism-mario`` (``worldsim.train.realism_training``) on real windows
against the next frames that the world model dreams from the same real contexts under the recorded
actions, so each real/dreamed pair shares its scene and only the generation differs.

The reward is the raw logit (VADER scores with its reward model's raw output): positive where the
critic believes the step real. A critic is fixed while the aligner trains, so the adapter can learn
to please it without becoming more real (an adversarial example); judge an alignment on held-out
fidelity, never on this reward alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from worldsim.core.checkpoint import shipped_checkpoint
from worldsim.core.checkpoint_kinds import REALISM_CRITIC
from worldsim.core.frames import degrade
from worldsim.rewards.checkpoints import load_network
from worldsim.rewards.transition import Scores, Transition

SHIPPED_CRITIC = "realism-mario-v0"  # trained against the shipped mario-v0's dreams


@dataclass
class RealismCriticConfig:
    image_channels: int = 3
    image_size: int = 64
    channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])  # one stride-2 4x4 conv each
    hidden: int = 128
    # a critic that reads degraded frames (``worldsim.core.frames.degrade``): blind to a sampler's faint
    # grain, which a critic of sharp frames keys on and an adapter learns to remove (0: sharp frames)
    blur: float = 0.0  # Gaussian blur, pixels
    levels: int = 0  # values per channel after re-quantising


class RealismCritic(nn.Module):
    """``forward(previous float[B, C, H, W], next_frame float[B, C, H, W])`` (both in ``[-1, 1]``) ->
    logits ``float[B]``: positive for a real step, negative for a dreamed one.

    SiLU and group norm rather than ReLU and batch norm: the aligner backpropagates through the
    critic into generated frames, and wants gradients that are smooth and independent of the batch.
    """

    def __init__(self, config: RealismCriticConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = 2 * config.image_channels
        for out_channels in config.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.GroupNorm(8, out_channels), nn.SiLU()]
            in_channels = out_channels
        side = config.image_size // 2 ** len(config.channels)
        self.net = nn.Sequential(
            *layers, nn.Flatten(), nn.Linear(in_channels * side * side, config.hidden), nn.SiLU(), nn.Linear(config.hidden, 1)
        )

    def forward(self, previous: torch.Tensor, next_frame: torch.Tensor) -> torch.Tensor:
        pair = degrade(torch.cat([previous, next_frame], dim=1), self.config.blur, self.config.levels)
        return self.net(pair).squeeze(1)


class RealismReward(nn.Module):
    """The critic's logit on (last history frame, generated frame); defined for every sample."""

    name = "realism"
    history_frames = 1

    def __init__(self, critic: RealismCritic):
        super().__init__()
        self.critic = critic

    def score(self, transition: Transition) -> Scores:
        logits = self.critic(transition.history[:, -1], transition.next_frame)
        return Scores(logits, torch.ones_like(logits, dtype=torch.bool))


def load_realism_reward(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> RealismReward:
    """The realism reward of a critic checkpoint (``worldsim train --model realism-mario``'s ``OUT/model``;
    default: the shipped ``realism-mario-v0``)."""
    critic, _ = load_network(
        path or shipped_checkpoint(SHIPPED_CRITIC), REALISM_CRITIC, "critic", RealismCriticConfig, RealismCritic, device
    )
    return RealismReward(critic)
