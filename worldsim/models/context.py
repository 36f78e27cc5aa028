"""The context path: what the denoiser knows about the past when it generates the next frame.

``FrameStackContext`` is DIAMOND's: the last K frames are stacked on the channels of the noisy
frame, and the last K actions (and the level of noise put on the context frames in training) are
embedded into the conditioning vector. It is a module of its own so that a long-memory context
(temporal attention, selective state spaces) can replace frame stacking without touching the
denoiser: anything returning ``(channels, embedding)`` of the same shapes fits.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(values: torch.Tensor, dim: int, scale: float = 250.0) -> torch.Tensor:
    """``float[B] -> float[B, dim]``: sines and cosines of ``scale * values`` at log-spaced frequencies."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = scale * values.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class FrameStackContext(nn.Module):
    """Past frames on channels; past actions and context noise in the conditioning vector.

    Args:
        num_actions: size of the discrete action space (for several agents: of the joint space).
        context_length: K, the number of past frames (and actions).
        image_channels: channels per frame (3 for RGB).
        embedding_dim: size of the conditioning vector (the U-Net's time-embedding size).
        sigma_data: EDM's data scale; context frames are divided by it, as DIAMOND does.
        action_counts: for a game of several agents, each agent's number of actions (their product
            is ``num_actions``): every agent's action gets an embedding of its own, so that each
            player's control is a separate input rather than one of ``num_actions`` joint symbols.

    ``forward(frames float[B, K, C, H, W] in [-1, 1], actions int64[B, K], context_sigma float[B])``
    returns ``channels float[B, K*C, H, W]`` and ``embedding float[B, embedding_dim]``.
    ``actions[:, i]`` is the action taken at ``frames[:, i]``: the last one is the action whose
    step the denoiser generates.
    """

    def __init__(
        self,
        num_actions: int,
        context_length: int,
        image_channels: int,
        embedding_dim: int,
        sigma_data: float = 0.5,
        action_counts: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.num_actions = num_actions
        self.context_length = context_length
        self.image_channels = image_channels
        self.sigma_data = sigma_data
        self.action_counts = tuple(action_counts) if action_counts and len(action_counts) > 1 else None
        if self.action_counts is not None and math.prod(self.action_counts) != num_actions:
            raise ValueError(f"action_counts {self.action_counts} do not multiply to num_actions {num_actions}")
        action_dim = max(embedding_dim // context_length, 8)
        if self.action_counts is None:
            self.action_embedding = nn.Embedding(num_actions, action_dim)
            actions_width = action_dim * context_length
        else:
            self.agent_action_embeddings = nn.ModuleList(nn.Embedding(count, action_dim) for count in self.action_counts)
            actions_width = action_dim * context_length * len(self.action_counts)
        self.project = nn.Sequential(
            nn.Linear(actions_width + embedding_dim, embedding_dim),
            nn.SiLU(),
            nn.Linear(embedding_dim, embedding_dim),
        )
        self.embedding_dim = embedding_dim

    @property
    def channels(self) -> int:
        return self.context_length * self.image_channels

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, context_sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = frames.shape[0]
        channels = frames.reshape(batch, self.channels, *frames.shape[-2:]) / self.sigma_data
        # ln(sigma)/4 like the denoiser's own noise level; a clean context (sigma 0) sits below the
        # smallest training level.
        noise_level = 0.25 * torch.log(context_sigma.clamp_min(1e-3))
        features = torch.cat([self.embed_actions(actions), sinusoidal_embedding(noise_level, self.embedding_dim)], dim=1)
        return channels, self.project(features)

    def embed_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """``int64[B, K]`` (joint) actions -> ``float[B, features]``."""
        if self.action_counts is None:
            return self.action_embedding(actions).flatten(1)
        # the joint index in C order (``GameDescription.joint_action``): the last agent varies fastest
        embedded, rest = [], actions
        for count, embedding in zip(reversed(self.action_counts), reversed(self.agent_action_embeddings), strict=True):
            embedded.append(embedding(rest % count).flatten(1))
            rest = rest // count
        return torch.cat(embedded[::-1], dim=1)
