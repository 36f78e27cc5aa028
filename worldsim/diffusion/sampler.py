"""Generating the next frame: a few Euler steps down a noise schedule, then 8-bit quantisation.

The Karras schedule is diffusers' ``EDMEulerScheduler``'s; ``SamplerConfig.sigmas`` replaces it with
explicit levels (a model trained at its sampler's levels, ``EDMTraining.sampler_levels_fraction``).
The Euler update is written here (one line): diffusers 0.42's ``set_timesteps(sigmas=...)`` returns
a wrong schedule for a custom list, and a hand-written step lets the last steps carry gradients
(reward-gradient alignment backpropagates through them). Generated frames are rounded to the 256
levels of a real frame, so that a frame fed back as context looks exactly like the frames the model
was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import torch
from diffusers import EDMEulerScheduler

from worldsim.core.frames import quantize


class Denoiser(Protocol):
    """What the sampler needs of a denoiser (``worldsim.models.denoiser.FrameDenoiser``)."""

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...

    def to_frame(self, denoised: torch.Tensor, frames: torch.Tensor) -> torch.Tensor: ...


@dataclass
class SamplerConfig:
    """DIAMOND's sampling values: Karras schedule from 5 to 2e-3 with rho 7, 3 Euler steps.

    ``sigmas``, when given, are the levels denoised at, largest first (the last step goes to 0);
    they replace the Karras schedule and ``num_steps`` is their count.
    """

    num_steps: int = 3
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    sigmas: list[float] | None = None

    def __post_init__(self):
        if self.sigmas is not None:
            self.sigmas = [float(s) for s in self.sigmas]
            if not self.sigmas or any(s <= 0 for s in self.sigmas) or sorted(self.sigmas, reverse=True) != self.sigmas:
                raise ValueError(f"sampler sigmas must be positive and decreasing, got {self.sigmas}")
            self.num_steps = len(self.sigmas)


class NextFrameSampler:
    """Draws next frames from a ``FrameDenoiser``, for a whole batch in each denoiser call."""

    def __init__(self, config: SamplerConfig | None = None, sigma_data: float = 0.5):
        self.config = config or SamplerConfig()
        if self.config.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.config.num_steps}")
        if self.config.sigmas is not None:
            levels = torch.tensor(self.config.sigmas, dtype=torch.float32)
        else:
            scheduler = EDMEulerScheduler(
                sigma_min=self.config.sigma_min,
                sigma_max=self.config.sigma_max,
                sigma_data=sigma_data,
                rho=self.config.rho,
                prediction_type="epsilon",
            )
            scheduler.set_timesteps(self.config.num_steps)
            levels = scheduler.sigmas[:-1].float()  # its last entry is the final 0
        self.sigmas = levels  # the levels denoised at, largest first; the last step goes to 0

    def sample(
        self,
        denoiser: Denoiser,
        frames: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        grad_steps: int = 0,
    ) -> torch.Tensor:
        """The next frame ``float[B, C, H, W]`` (quantised), given ``frames float[B, K, C, H, W]`` and
        ``actions int64[B, K]`` (the action taken at each context frame; the last one is the step).

        The last ``grad_steps`` denoiser calls run with gradients (when autograd is on), and the
        quantisation passes them straight through; the earlier ones never do.
        """
        batch, _, channels, height, width = frames.shape
        sigmas = self.sigmas.tolist() + [0.0]
        sample = sigmas[0] * torch.randn((batch, channels, height, width), generator=generator, device=frames.device)
        first_with_grad = len(sigmas) - 1 - grad_steps
        for index, (sigma, next_sigma) in enumerate(pairwise(sigmas)):
            with torch.set_grad_enabled(torch.is_grad_enabled() and index >= first_with_grad):
                level = torch.full((batch,), sigma, device=frames.device)
                denoised = denoiser.denoise(sample, level, frames, actions)
                # Euler step of the probability-flow ODE, in diffusers' order of operations (same floats)
                sample = sample + (sample - denoised) / sigma * (next_sigma - sigma)
        next_frame = denoiser.to_frame(sample, frames)
        if grad_steps:
            return next_frame + (quantize(next_frame) - next_frame).detach()
        return quantize(next_frame)
