"""Imagining a walk forward: the explorer's clip from one panorama, by Euler steps down a Karras schedule.

The schedule is diffusers' ``EDMEulerScheduler``'s; the Euler update is the frame sampler's
(``worldsim.diffusion.sampler``), since the explorer's ``denoise`` returns the clean estimate
rather than the raw network output that ``EDMEulerScheduler.step`` takes. The conditioning
panorama carries the small noise it was trained with (``exp(condition_log_sigma_mean)``), and the
clip is rounded to 8 bits like a real one, so that a generated panorama can condition the next walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from diffusers import EDMEulerScheduler

from worldsim.core.frames import quantize


@dataclass
class WalkSamplerConfig:
    num_steps: int = 12
    sigma_min: float = 2e-3
    sigma_max: float = 80.0
    rho: float = 7.0


class WalkSampler:
    """``sample(explorer, panorama float[B, C, H, W], generator)`` -> ``float[B, F, C, H, W]`` in ``[-1, 1]``.

    ``noise=(condition_noise float[B, C, H, W], clip_noise float[B, F, C, H, W])``, unit Gaussians,
    replaces the draws from ``generator`` (the yaw-equivariance test rolls the noise with the panorama).
    """

    def __init__(self, config: WalkSamplerConfig | None = None, sigma_data: float = 0.5):
        self.config = config or WalkSamplerConfig()
        scheduler = EDMEulerScheduler(
            sigma_min=self.config.sigma_min, sigma_max=self.config.sigma_max, sigma_data=sigma_data, rho=self.config.rho
        )
        scheduler.set_timesteps(self.config.num_steps)
        self.sigmas = scheduler.sigmas[:-1].float()  # its last entry is the final 0

    @torch.no_grad()
    def sample(
        self,
        explorer,
        panorama: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        config = explorer.config
        batch = panorama.shape[0]
        shape = (batch, config.frames, config.image_channels, config.image_height, config.image_width)
        if noise is None:
            noise = (
                torch.randn(panorama.shape, generator=generator, device=panorama.device),
                torch.randn(shape, generator=generator, device=panorama.device),
            )
        condition_noise, clip_noise = noise
        condition, condition_sigma = explorer.sampling_condition(panorama, condition_noise)
        sigmas = self.sigmas.tolist() + [0.0]
        sample = sigmas[0] * clip_noise
        for sigma, next_sigma in pairwise(sigmas):
            denoised = explorer.denoise(sample, torch.full((batch,), sigma, device=panorama.device), condition, condition_sigma)
            sample = sample + (sample - denoised) / sigma * (next_sigma - sigma)
        return quantize(sample)
