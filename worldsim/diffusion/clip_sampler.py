"""Generating clips with a clip denoiser: EDM's Heun sampler, and long clips in overlapping chunks.

A clip of ``F`` frames is drawn at once, all its new frames at one noise level, down the Karras
schedule of diffusers' ``EDMEulerScheduler`` with EDM's second-order (Heun) correction. Context
frames, when given, sit at the front of the clip at a small fixed level and are never updated:
the denoiser was trained that way (``worldsim.models.video_denoiser``). The update is written here
because diffusers' schedulers move one shared noise level for a whole sample, while here the
context and the new frames carry different ones.

``generate`` makes clips longer than the model's: a first chunk of ``clip_frames`` frames, then
chunks whose first ``overlap`` frames are the last ones generated, each adding
``clip_frames - overlap`` new frames, until ``num_frames``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import torch
from diffusers import EDMEulerScheduler
from tqdm import tqdm

from worldsim.core.frames import quantize


class ClipDenoiser(Protocol):
    """What the sampler needs (``worldsim.models.video_denoiser.VideoDenoiser``)."""

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


@dataclass
class ClipSamplerConfig:
    """EDM's sampling values (18 Heun steps from 80 with rho 7); ``context_sigma`` is the level
    context frames are given at (inside the training range of context noise)."""

    num_steps: int = 18
    sigma_min: float = 2e-3
    sigma_max: float = 80.0
    rho: float = 7.0
    heun: bool = True
    context_sigma: float = 0.02


class ClipSampler:
    def __init__(self, config: ClipSamplerConfig | None = None, sigma_data: float = 0.5):
        self.config = config or ClipSamplerConfig()
        if self.config.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.config.num_steps}")
        scheduler = EDMEulerScheduler(
            sigma_min=self.config.sigma_min, sigma_max=self.config.sigma_max, sigma_data=sigma_data, rho=self.config.rho, prediction_type="epsilon"
        )
        scheduler.set_timesteps(self.config.num_steps)
        self.sigmas = scheduler.sigmas.float().tolist()  # largest first, ending with 0

    @torch.no_grad()
    def sample(
        self,
        denoiser: ClipDenoiser,
        shape: tuple[int, ...],
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """New frames ``float[B, C, F_new, H, W]`` (quantised to 8 bits) for ``shape = (B, C, F_new,
        H, W)``, following ``context float[B, C, K, H, W]`` (clean frames in ``[-1, 1]``) if given,
        on ``device`` (the context's when there is one)."""
        batch, new_frames = shape[0], shape[2]
        device = context.device if context is not None else torch.device(device)
        known = 0 if context is None else context.shape[2]
        if known:
            level = self.config.context_sigma
            context = context + level * torch.randn(context.shape, generator=generator, device=device)
        x = self.sigmas[0] * torch.randn(shape, generator=generator, device=device)

        def denoised(x: torch.Tensor, sigma: float) -> torch.Tensor:
            levels = torch.full((batch, known + new_frames), sigma, device=device)
            if not known:
                return denoiser.denoise(x, levels)
            levels[:, :known] = self.config.context_sigma
            return denoiser.denoise(torch.cat([context, x], dim=2), levels)[:, :, known:]

        for sigma, next_sigma in pairwise(self.sigmas):
            slope = (x - denoised(x, sigma)) / sigma
            x_next = x + (next_sigma - sigma) * slope
            if self.config.heun and next_sigma > 0:  # EDM's second-order correction
                x_next = x + (next_sigma - sigma) * 0.5 * (slope + (x_next - denoised(x_next, next_sigma)) / next_sigma)
            x = x_next
        return quantize(x.clamp(-1, 1))

    def generate(
        self,
        denoiser: ClipDenoiser,
        num_frames: int,
        clip_frames: int,
        overlap: int,
        frame_shape: tuple[int, int, int],
        *,
        batch: int = 1,
        first: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """A clip of ``num_frames`` frames ``float[B, C, num_frames, H, W]``, in chunks of
        ``clip_frames`` that overlap by ``overlap``. ``first float[B, C, K, H, W]`` (K <= overlap),
        when given, are real frames the clip starts with (they are its first K frames)."""
        if not 0 < overlap < clip_frames:
            raise ValueError(f"overlap must be in 1..clip_frames - 1 = {clip_frames - 1}, got {overlap}")
        channels, height, width = frame_shape
        video = first if first is not None else torch.zeros(batch, channels, 0, height, width, device=device)
        if video.shape[2] > overlap:
            raise ValueError(f"{video.shape[2]} first frames do not fit the overlap of {overlap}")
        bar = tqdm(total=num_frames, initial=video.shape[2], disable=not progress, desc="generate", unit="frame")
        while video.shape[2] < num_frames:
            context = video[:, :, -overlap:] if video.shape[2] else None
            new = clip_frames - (0 if context is None else context.shape[2])
            new = min(new, num_frames - video.shape[2])
            chunk = self.sample(denoiser, (video.shape[0], channels, new, height, width), context, generator, video.device)
            video = torch.cat([video, chunk], dim=2)
            bar.update(new)
        bar.close()
        return video
