"""The inner network of the video denoiser: a space-time U-Net over whole clips.

SSM-VDM's design: a pixel-space U-Net whose spatial blocks see one frame at a time and whose
temporal layers (``worldsim.models.temporal_layers``: rotary attention, causal S6 or bi-S6) mix
each pixel position across frames, after the spatial blocks at every level from
``temporal_from_level`` down and in the middle. ``temporal="none"`` keeps the spatial blocks only:
every frame denoised on its own, the ablation that says what temporal mixing buys.

The spatial pieces are diffusers' (``ResnetBlock2D`` with adaptive group norm from the noise
level's embedding, ``Downsample2D``, ``Upsample2D``, ``Timesteps`` + ``TimestepEmbedding``). Each
frame carries its own noise level, so frames given as context (clean) and frames being generated
(noisy) sit in one clip: that is how a clip is continued in overlapping chunks.

Layouts: spatial blocks run on ``float[B * F, C, H, W]`` (frames folded into the batch), temporal
layers on ``float[B, C, F, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

from worldsim.models.temporal_layers import KINDS, TemporalLayer

TEMPORAL_KINDS = ("none", *KINDS)


@dataclass
class VideoUNetConfig:
    """Architecture of ``VideoUNet``; stored in a checkpoint's config.json."""

    image_channels: int = 3
    image_size: int = 32
    block_channels: tuple[int, ...] = (64, 96, 128)
    layers_per_block: int = 1
    norm_groups: int = 32
    temporal: str = "bi-s6"  # "none", "attn", "s6" (causal) or "bi-s6"
    temporal_from_level: int = 1  # levels >= this (and the middle) get temporal layers; 0 is full resolution
    temporal_options: dict = field(default_factory=dict)  # to the mixer: state_size, expand, heads, ...

    def __post_init__(self):
        self.block_channels = tuple(int(c) for c in self.block_channels)
        if self.temporal not in TEMPORAL_KINDS:
            raise ValueError(f"unknown temporal layer {self.temporal!r}: choose one of {', '.join(TEMPORAL_KINDS)}")
        if self.image_size % 2 ** (len(self.block_channels) - 1):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^(levels - 1) = {2 ** (len(self.block_channels) - 1)}")


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """``float[B, C, F, H, W]`` -> ``float[B * F, C, H, W]``."""
    batch, channels, frames, height, width = x.shape
    return x.transpose(1, 2).reshape(batch * frames, channels, height, width)


def unfold_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``float[B * F, C, H, W]`` -> ``float[B, C, F, H, W]``."""
    _, channels, height, width = x.shape
    return x.reshape(-1, frames, channels, height, width).transpose(1, 2)


class _Temporal(nn.Module):
    """A temporal layer on frame-folded features, or nothing (``kind="none"``)."""

    def __init__(self, kind: str, channels: int, options: dict):
        super().__init__()
        self.layer = None if kind == "none" else TemporalLayer(kind, channels, **options)

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        if self.layer is None:
            return h
        return fold_frames(self.layer(unfold_frames(h, frames)))


class _Level(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, layers: int, embedding: int, config: VideoUNetConfig, temporal: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels if i == 0 else out_channels,
                out_channels=out_channels,
                temb_channels=embedding,
                groups=config.norm_groups,
                time_embedding_norm="scale_shift",
            )
            for i in range(layers)
        )
        self.temporal = _Temporal(config.temporal if temporal else "none", out_channels, config.temporal_options)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor, frames: int) -> torch.Tensor:
        for resnet in self.resnets:
            h = resnet(h, embedding)
        return self.temporal(h, frames)


class VideoUNet(nn.Module):
    """``F(x, c_noise)`` of EDM's preconditioned denoiser, over clips.

    Shapes: ``x float[B, C, F, H, W]`` (the preconditioned noisy clip), ``c_noise float[B, F]`` (one
    noise level per frame) -> ``float[B, C, F, H, W]``. The output convolution starts at zero.
    """

    def __init__(self, config: VideoUNetConfig):
        super().__init__()
        self.config = config
        channels = config.block_channels
        embedding = 4 * channels[0]
        self.time_proj = Timesteps(channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(channels[0], embedding)
        self.conv_in = nn.Conv2d(config.image_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = channels[0]
        for level, width in enumerate(channels):
            self.down.append(_Level(previous, width, config.layers_per_block, embedding, config, level >= config.temporal_from_level))
            if level < len(channels) - 1:
                self.downsample.append(Downsample2D(width, use_conv=True, name="op"))  # "op": one name for its conv (the default registers two)
            previous = width
        self.middle = nn.ModuleList(
            [
                _Level(channels[-1], channels[-1], 1, embedding, config, True),
                _Level(channels[-1], channels[-1], 1, embedding, config, False),
            ]
        )
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(channels))):
            width = channels[level]
            self.up.append(_Level(previous + width, width, config.layers_per_block + 1, embedding, config, level >= config.temporal_from_level))
            if level > 0:
                self.upsample.append(Upsample2D(width, use_conv=True))
            previous = width
        self.norm_out = nn.GroupNorm(config.norm_groups, channels[0])
        self.conv_out = nn.Conv2d(channels[0], config.image_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        # diffusers' sinusoidal embedding expects timestep-like magnitudes; EDM's c_noise = ln(sigma)/4
        # lies in about [-1.6, 1.1], so it is spread over the embedding's range first.
        embedding = self.time_embedding(self.time_proj(c_noise.reshape(-1) * 250.0).to(x.dtype))
        h = self.conv_in(fold_frames(x))
        skips = []
        for level, block in enumerate(self.down):
            h = block(h, embedding, frames)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        for block in self.middle:
            h = block(h, embedding, frames)
        for level, block in enumerate(self.up):
            if level > 0:
                h = self.upsample[level - 1](h)
            h = block(torch.cat([h, skips.pop()], dim=1), embedding, frames)
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        return unfold_frames(out, frames)
