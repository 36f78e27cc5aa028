"""Generating the next frame: a few Euler steps down a Karras noise schedule, then 8-bit quantisation.

The schedule and the Euler update are diffusers' ``EDMEulerScheduler``; what is ours is the
conditioning (the context goes to every denoiser call) and the quantisation: generated frames are
rounded to the 256 levels of a real frame, so that a frame fed back as context in a rollout looks
exactly like the frames the model was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import EDMEulerScheduler

from worldsim.diffusion.edm import FrameDenoiser


@dataclass
class SamplerConfig:
    """DIAMOND's sampling values: Karras schedule from 5 to 2e-3 with rho 7, 3 Euler steps."""

    num_steps: int = 3
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0

    def to_dict(self) -> dict:
        return asdict(self)


def quantize(frames: torch.Tensor) -> torch.Tensor:
    """``float`` in ``[-1, 1]`` -> the nearest of the 256 levels of an 8-bit image (still float)."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """``float[..., C, H, W]`` in ``[-1, 1]`` -> ``uint8[..., H, W, C]``."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


def from_uint8(frames: torch.Tensor) -> torch.Tensor:
    """``uint8[..., H, W, C]`` -> ``float[..., C, H, W]`` in ``[-1, 1]``."""
    return frames.movedim(-1, -3).float() / 127.5 - 1


class NextFrameSampler:
    """Draws next frames from a ``FrameDenoiser``, for a whole batch in each denoiser call."""

    def __init__(self, config: SamplerConfig | None = None, sigma_data: float = 0.5):
        self.config = config or SamplerConfig()
        if self.config.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.config.num_steps}")
        self.scheduler = EDMEulerScheduler(
            sigma_min=self.config.sigma_min,
            sigma_max=self.config.sigma_max,
            sigma_data=sigma_data,
            rho=self.config.rho,
            prediction_type="epsilon",
        )

    @torch.no_grad()
    def sample(
        self,
        denoiser: FrameDenoiser,
        frames: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The next frame ``float[B, C, H, W]`` (quantised), given ``frames float[B, K, C, H, W]`` and
        ``actions int64[B, K]`` (the action taken at each context frame; the last one is the step)."""
        batch, _, channels, height, width = frames.shape
        scheduler = self.scheduler
        scheduler.set_timesteps(self.config.num_steps, device=frames.device)
        noise = torch.randn((batch, channels, height, width), generator=generator, device=frames.device)
        sample = noise * scheduler.sigmas[0]
        for index, timestep in enumerate(scheduler.timesteps):
            sigma = torch.full((batch,), float(scheduler.sigmas[index]), device=frames.device)
            scheduler.scale_model_input(sample, timestep)  # marks the step started; the denoiser scales its own input
            denoised = denoiser.denoise(sample, sigma, frames, actions)
            # The denoiser already preconditions its input and output: hand its clean-frame estimate
            # to the scheduler, which then only takes the Euler step to the next noise level.
            sample = scheduler.step(denoised, timestep, sample, pred_original_sample=denoised).prev_sample
        return quantize(sample)
