"""The clip denoiser: a space-time U-Net inside EDM's preconditioning, one noise level per frame.

``VideoDenoiser`` is what ``worldsim.diffusion.clip_sampler`` calls and what ``worldsim train
--model video-<arch>`` trains. A training clip is split in two: its first ``k`` frames are context
(clean but for a little noise, never in the loss) and the rest are noised at one level drawn from
EDM's log-normal. ``k`` is 0 for ``unconditional_fraction`` of the clips (the model then starts a
clip from nothing) and otherwise uniform in ``1..max_context``: that is what continuing a clip in
overlapping chunks asks of it.

The preconditioning formulas are diffusers' ``EDMEulerScheduler``'s, as for the frame denoiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import EDMEulerScheduler
from torch import nn

from worldsim.diffusion.edm import skip_and_out_scales
from worldsim.models.video_unet import VideoUNet


@dataclass
class VideoEDMTraining:
    """How training draws noise and context (EDM's image values for the noise)."""

    sigma_data: float = 0.5
    log_sigma_mean: float = -1.2
    log_sigma_std: float = 1.2
    sigma_min: float = 2e-3
    sigma_max: float = 80.0
    context_sigma_max: float = 0.1  # context frames carry noise U(0, max): generated context is imperfect
    unconditional_fraction: float = 0.25  # clips with no context frame
    max_context: int = 8  # context frames of the others: uniform in 1..max_context (< clip length)


class VideoDenoiser(nn.Module):
    """Space-time U-Net + EDM preconditioning over ``float[B, C, F, H, W]`` clips in ``[-1, 1]``."""

    def __init__(self, network: VideoUNet, training: VideoEDMTraining | None = None):
        super().__init__()
        self.network = network
        self.training_config = training or VideoEDMTraining()
        self.preconditioning = EDMEulerScheduler(sigma_data=self.training_config.sigma_data, prediction_type="epsilon")

    @staticmethod
    def _per_frame(sigma: torch.Tensor) -> torch.Tensor:
        return sigma[:, None, :, None, None]  # float[B, F] -> broadcast over float[B, C, F, H, W]

    def _network_output(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c_noise = self.preconditioning.precondition_noise(sigma)
        return self.network(self.preconditioning.precondition_inputs(noisy, self._per_frame(sigma)), c_noise)

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Clean estimate ``float[B, C, F, H, W]`` of ``noisy``, whose frame ``f`` of clip ``b``
        carries noise of level ``sigma[b, f]`` (``float[B, F]``; context frames a small one)."""
        output = self._network_output(noisy, sigma)
        return self.preconditioning.precondition_outputs(noisy, output, self._per_frame(sigma))

    def denoise_clean(self, clean: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``clean`` noised with ``sigma[b, f] * noise`` and denoised, in one network call: the clean
        estimate and EDM's weighted error per element (both ``float[B, C, F, H, W]``; the error is
        the network's distance from the output that makes D exact, i.e. D's error / c_out)."""
        sigma_5d = self._per_frame(sigma)
        noisy = clean + sigma_5d * noise
        c_skip, c_out = skip_and_out_scales(sigma_5d, self.training_config.sigma_data)
        output = self._network_output(noisy, sigma)
        return self.preconditioning.precondition_outputs(noisy, output, sigma_5d), (output - (clean - c_skip * noisy) / c_out) ** 2

    def loss(self, clips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss of ``clips float[B, C, F, H, W]``: context frames first, the rest noised
        at one level per clip; the weighted error on the generated frames only."""
        config = self.training_config
        batch, _, frames = clips.shape[:3]
        device = clips.device
        context = torch.randint(1, config.max_context + 1, (batch,), device=device, generator=generator)
        unconditional = torch.rand(batch, device=device, generator=generator) < config.unconditional_fraction
        context = torch.where(unconditional, torch.zeros_like(context), context)
        is_context = torch.arange(frames, device=device)[None, :] < context[:, None]  # bool[B, F]
        log_sigma = config.log_sigma_mean + config.log_sigma_std * torch.randn(batch, 1, device=device, generator=generator)
        sigma = log_sigma.exp().clamp(config.sigma_min, config.sigma_max).expand(batch, frames)
        context_sigma = config.sigma_min + config.context_sigma_max * torch.rand(batch, 1, device=device, generator=generator)
        sigma = torch.where(is_context, context_sigma.expand(batch, frames), sigma)
        noise = torch.randn(clips.shape, device=device, generator=generator)
        error = self.denoise_clean(clips, sigma, noise)[1].mean(dim=(1, 3, 4))  # float[B, F]
        generated = (~is_context).float()
        return (error * generated).sum() / generated.sum()
