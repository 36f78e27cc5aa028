"""Frames as the envs emit them (``uint8[..., H, W, C]``) and as the models take them (``float[..., C, H, W]`` in ``[-1, 1]``)."""

from __future__ import annotations

import torch


def quantize(frames: torch.Tensor) -> torch.Tensor:
    """``float`` in ``[-1, 1]`` -> the nearest of the 256 levels of an 8-bit image (still float)."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """``float[..., C, H, W]`` in ``[-1, 1]`` -> ``uint8[..., H, W, C]``."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


def from_uint8(frames: torch.Tensor) -> torch.Tensor:
    """``uint8[..., H, W, C]`` -> ``float[..., C, H, W]`` in ``[-1, 1]``."""
    return frames.movedim(-1, -3).float() / 127.5 - 1


def degrade(frames: torch.Tensor, blur: float = 0.0, levels: int = 0) -> torch.Tensor:
    """``float[B, C, H, W]`` in ``[-1, 1]`` blurred (Gaussian, ``blur`` pixels; 0: none) and re-quantised
    to ``levels`` values per channel (0: none): what a judge sees when it must not rely on a
    sampler's faint grain. Differentiable: the blur is a convolution, the rounding passes the
    gradient straight through (so a reward on degraded frames still trains the generator)."""
    if blur > 0:  # separable Gaussian, reflected borders (torchvision is not a dependency)
        radius = int(3 * blur)
        taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device) ** 2) / (2 * blur**2))
        taps = taps / taps.sum()
        channels = frames.shape[1]
        frames = torch.nn.functional.pad(frames, (radius, radius, radius, radius), mode="reflect")
        frames = torch.nn.functional.conv2d(frames, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        frames = torch.nn.functional.conv2d(frames, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    if levels > 0:
        rounded = torch.round((frames + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1
        frames = frames + (rounded - frames).detach()
    return frames
