"""EDM-preconditioned next-frame denoiser (Karras et al. 2022), as DIAMOND uses it.

``FrameDenoiser`` wraps an inner network ``F`` so that its output is a clean-frame estimate

    D(x; sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x; c_noise(sigma), context)

with EDM's coefficients, taken from diffusers' ``EDMEulerScheduler`` (the scheduler the sampler
steps with), so training and sampling cannot disagree on them. Frames are ``float`` in ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import EDMEulerScheduler
from torch import nn

from worldsim.models.context import FrameStackContext
from worldsim.models.frame_unet import FrameUNet


@dataclass
class EDMTraining:
    """How noise is drawn in training (DIAMOND's Atari values)."""

    sigma_data: float = 0.5
    log_sigma_mean: float = -0.4  # sigma ~ LogNormal(mean, std), clipped to [sigma_min, sigma_max]
    log_sigma_std: float = 1.2
    sigma_min: float = 2e-3
    sigma_max: float = 20.0
    offset_noise: float = 0.3  # per-channel constant noise: lets the model shift whole-frame colours
    context_sigma_max: float = 0.3  # context frames get noise of level U(0, max), against drift

    def to_dict(self) -> dict:
        return asdict(self)


class FrameDenoiser(nn.Module):
    """Context module + inner network + EDM preconditioning; ``loss`` trains, ``denoise`` samples."""

    def __init__(self, context: FrameStackContext, network: FrameUNet, training: EDMTraining | None = None):
        super().__init__()
        self.context = context
        self.network = network
        self.training_config = training or EDMTraining()
        # Only its preconditioning formulas are used here; the sampler steps with its own instance.
        self.preconditioning = EDMEulerScheduler(sigma_data=self.training_config.sigma_data, prediction_type="epsilon")

    def _network_output(self, noisy, sigma, frames, actions, context_sigma) -> torch.Tensor:
        sigma = sigma.reshape(-1, 1, 1, 1)
        channels, embedding = self.context(frames, actions, context_sigma)
        c_noise = self.preconditioning.precondition_noise(sigma.flatten())
        return self.network(self.preconditioning.precondition_inputs(noisy, sigma), c_noise, channels, embedding)

    def denoise(
        self,
        noisy: torch.Tensor,
        sigma: torch.Tensor,
        frames: torch.Tensor,
        actions: torch.Tensor,
        context_sigma: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Clean-frame estimate ``float[B, C, H, W]`` of ``noisy`` at noise level ``sigma float[B]``.

        ``frames float[B, K, C, H, W]`` and ``actions int64[B, K]`` are the context;
        ``context_sigma float[B]`` the noise level the context frames carry (0 when clean).
        """
        if context_sigma is None:
            context_sigma = torch.zeros(noisy.shape[0], device=noisy.device)
        output = self._network_output(noisy, sigma, frames, actions, context_sigma)
        return self.preconditioning.precondition_outputs(noisy, output, sigma.reshape(-1, 1, 1, 1))

    def loss(self, target: torch.Tensor, frames: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """EDM's weighted denoising loss for one next frame per sample.

        ``target float[B, C, H, W]``, the frame to generate; ``frames float[B, K, C, H, W]``, the
        context; ``actions int64[B, K]``, the action taken at each context frame (so
        ``actions[:, -1]`` is the one whose step produced ``target``).
        """
        config = self.training_config
        batch, device = target.shape[0], target.device
        log_sigma = config.log_sigma_mean + config.log_sigma_std * torch.randn(batch, device=device, generator=generator)
        sigma = log_sigma.exp().clamp(config.sigma_min, config.sigma_max)
        noise = torch.randn(target.shape, device=device, generator=generator)
        noise = noise + config.offset_noise * torch.randn((batch, target.shape[1], 1, 1), device=device, generator=generator)
        noisy = target + sigma.reshape(-1, 1, 1, 1) * noise

        context_sigma = config.context_sigma_max * torch.rand(batch, device=device, generator=generator)
        noisy_frames = frames + context_sigma.reshape(-1, 1, 1, 1, 1) * torch.randn(frames.shape, device=device, generator=generator)

        output = self._network_output(noisy, sigma, noisy_frames, actions, context_sigma)
        # Regress F onto the output that makes D exact: the loss on D weighted by 1 / c_out^2 (EDM).
        c_skip, c_out = skip_and_out_scales(sigma.reshape(-1, 1, 1, 1), config.sigma_data)
        return nn.functional.mse_loss(output, (target - c_skip * noisy) / c_out)


def skip_and_out_scales(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM's ``c_skip`` and ``c_out`` (the training target needs them apart; diffusers' scheduler
    only applies them together, in ``precondition_outputs``)."""
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2) ** 0.5
    return c_skip, c_out
