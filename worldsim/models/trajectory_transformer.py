"""A small causal transformer over trajectory tokens, each at its own noise level (diffusion forcing).

A token stacks ``frame_stack`` consecutive steps of (state, action) features. The network reads
the noisy tokens and each token's noise level, and predicts the clean tokens. Attention is causal:
a token sees only itself and the past, so a plan's near future never depends on its far future
(what lets diffusion forcing denoise the near future first), and a guidance gradient taken on the
far future flows back into the near future through the network.

The noise-level embedding is diffusers' (``Timesteps`` + ``TimestepEmbedding``); the transformer
layers are PyTorch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


@dataclass
class TrajectoryTransformerConfig:
    token_dim: int = 60  # frame_stack * (state + action) features
    max_tokens: int = 64
    width: int = 128
    depth: int = 4
    heads: int = 4


class TrajectoryTransformer(nn.Module):
    """``forward(x float[B, T, token_dim], timesteps int64[B, T]) -> float[B, T, token_dim]`` (clean estimate)."""

    causal = True  # token t reads tokens <= t only (the sampler relies on it to skip the far future)

    def __init__(self, config: TrajectoryTransformerConfig):
        super().__init__()
        self.config = config
        self.input = nn.Linear(config.token_dim, config.width)
        self.position = nn.Parameter(torch.zeros(config.max_tokens, config.width))
        nn.init.normal_(self.position, std=0.02)
        self.level_features = Timesteps(config.width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.level_embedding = TimestepEmbedding(config.width, config.width)
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, dim_feedforward=4 * config.width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.output = nn.Linear(config.width, config.token_dim)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        if tokens > self.config.max_tokens:
            raise ValueError(f"{tokens} tokens, the model was built for at most {self.config.max_tokens}")
        levels = self.level_embedding(self.level_features(timesteps.flatten()).to(x.dtype)).reshape(batch, tokens, -1)
        h = self.input(x) + self.position[:tokens] + levels
        mask = nn.Transformer.generate_square_subsequent_mask(tokens, device=x.device, dtype=x.dtype)
        h = self.transformer(h, mask=mask, is_causal=True)
        return self.output(self.norm(h))
