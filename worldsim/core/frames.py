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
