"""The next-frame denoiser: context module + inner network + EDM preconditioning.

``FrameDenoiser`` is the model the sampler calls; the noise it trains at and the preconditioning
formulas are ``worldsim.diffusion.edm``'s. With a ``FrameMemory`` (``worldsim.models.frame_memory``)
it also reads the dream's long memory: ``memory float[B, D]``, the scan's output after the last
context frame, whose readouts join the context's channels and conditioning vector; and, with the
memory's view bank, ``view float[B, C, H, W]``, the view it recalled: stacked with the context
frames as input, and one more mixture candidate.

With ``mixture_candidates`` in its network's config, the clean estimate is a per-pixel mixture
(softmax weights from the network) of EDM's estimate and each context frame: a frame the context
already shows, such as the view two steps back after turning away and straight back, is copied
exactly, where the U-Net (run at 16x16 with about one frame's numbers per position) can only redraw
it. Compositing earlier frames by predicted masks is Finn et al.'s (2016) video prediction (CDNA).

A second inner network may take the low noise levels (``use_low_noise_network``; eDiff-I's
denoisers by noise level): how an alignment adapter acts only at the sampling steps it was trained
through (``worldsim.models.lora.apply_adapter(..., sigma_max=)``).
"""

from __future__ import annotations

import torch
from diffusers import EDMEulerScheduler
from torch import nn

from worldsim.diffusion.edm import EDMTraining, blur, skip_and_out_scales
from worldsim.models.context import FrameStackContext
from worldsim.models.frame_memory import FrameMemory
from worldsim.models.frame_unet import FrameUNet


class FrameDenoiser(nn.Module):
    """Context module + inner network + EDM preconditioning (+ an optional long memory); ``loss``
    trains, ``denoise`` samples."""

    def __init__(
        self, context: FrameStackContext, network: FrameUNet, training: EDMTraining | None = None, memory: FrameMemory | None = None
    ):
        super().__init__()
        self.context = context
        self.network = network
        self.memory = memory
        self.low_noise_network: nn.Module | None = None  # see use_low_noise_network
        self.low_noise_sigma_max = 0.0
        self.training_config = training or EDMTraining()
        # Only its preconditioning formulas are used here; the sampler steps with its own instance.
        self.preconditioning = EDMEulerScheduler(sigma_data=self.training_config.sigma_data, prediction_type="epsilon")

    @property
    def recalls_views(self) -> bool:
        """Whether this denoiser reads a recalled view (its memory keeps a view bank)."""
        return self.memory is not None and self.memory.config.view_bank > 0

    def _network_output(self, noisy, sigma, frames, actions, context_sigma, memory=None, view=None) -> torch.Tensor:
        sigma = sigma.reshape(-1, 1, 1, 1)
        channels, embedding = self.context(frames, actions, context_sigma)
        if self.memory is not None:
            if memory is None:
                raise ValueError("this denoiser remembers: pass memory=, the FrameMemory output after the last context frame")
            memory_map, memory_vector = self.memory.readout(memory)
            channels, embedding = torch.cat([channels, memory_map], dim=1), embedding + memory_vector
            if self.recalls_views:
                if view is None:
                    raise ValueError("this denoiser recalls views: pass view=, the FrameMemory's recalled view")
                # seen beside the context frames, so the mixture weights can judge it and the estimate use it
                channels = torch.cat([channels, view], dim=1)
        c_noise = self.preconditioning.precondition_noise(sigma.flatten())
        inputs = self.preconditioning.precondition_inputs(noisy, sigma)
        if self.low_noise_network is None:
            return self.network(inputs, c_noise, channels, embedding)
        low = sigma.flatten() <= self.low_noise_sigma_max
        if bool(low.all()):  # the sampler's batches share one level: one network runs
            return self.low_noise_network(inputs, c_noise, channels, embedding)
        if not bool(low.any()):
            return self.network(inputs, c_noise, channels, embedding)
        high_output = self.network(inputs, c_noise, channels, embedding)
        return torch.where(low.reshape(-1, 1, 1, 1), self.low_noise_network(inputs, c_noise, channels, embedding), high_output)

    def _estimate(self, noisy, sigma, frames, actions, context_sigma, memory=None, view=None) -> torch.Tensor:
        """The clean estimate of the target: EDM's ``c_skip * noisy + c_out * F``, or with mixture
        candidates, its per-pixel mixture with the context frames and the recalled ``view`` (each as
        a target, see ``target``)."""
        output = self._network_output(noisy, sigma, frames, actions, context_sigma, memory, view)
        channels = noisy.shape[1]
        estimate = self.preconditioning.precondition_outputs(noisy, output[:, :channels], sigma.reshape(-1, 1, 1, 1))
        if output.shape[1] == channels:
            return estimate
        copies = [frames[:, k] for k in range(frames.shape[1])]
        if self.recalls_views:
            copies.append(view)
        candidates = torch.stack([estimate, *(self.target(copy, frames) for copy in copies)], dim=1)
        weights = output[:, channels:].softmax(dim=1).unsqueeze(2)  # [B, candidates, 1, H, W]
        return (weights * candidates).sum(dim=1)

    def use_low_noise_network(self, network: nn.Module | None, sigma_max: float = 0.0) -> None:
        """Denoise at noise levels ``<= sigma_max`` with ``network`` (the same architecture as
        ``self.network``) and above it with ``self.network``; ``None``: one network at every level."""
        self.low_noise_network, self.low_noise_sigma_max = network, float(sigma_max)

    def target(self, next_frame: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """What is denoised for ``next_frame float[B, C, H, W]`` after context ``frames float[B, K, C, H, W]``."""
        return next_frame - frames[:, -1] if self.training_config.prediction == "change" else next_frame

    def to_frame(self, denoised: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """The next frame from a clean estimate of the target (the inverse of ``target``)."""
        return frames[:, -1] + denoised if self.training_config.prediction == "change" else denoised

    def denoise(
        self,
        noisy: torch.Tensor,
        sigma: torch.Tensor,
        frames: torch.Tensor,
        actions: torch.Tensor,
        context_sigma: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        view: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Clean estimate ``float[B, C, H, W]`` of the target (see ``target``) from ``noisy`` at noise
        level ``sigma float[B]``.

        ``frames float[B, K, C, H, W]`` and ``actions int64[B, K]`` are the context;
        ``context_sigma float[B]`` the noise level the context frames carry (0 when clean);
        ``memory float[B, D]`` the long memory's output (a denoiser with a memory needs it);
        ``view float[B, C, H, W]`` the view it recalled (with a view bank).
        """
        if context_sigma is None:
            context_sigma = torch.zeros(noisy.shape[0], device=noisy.device)
        return self._estimate(noisy, sigma, frames, actions, context_sigma, memory, view)

    def loss(
        self,
        next_frame: torch.Tensor,
        frames: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        sampler_sigmas: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        context_blur_max: float | None = None,
        view: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """EDM's weighted denoising loss for one next frame per sample.

        ``next_frame float[B, C, H, W]``, the frame to generate; ``frames float[B, K, C, H, W]``,
        the context; ``actions int64[B, K]``, the action taken at each context frame (so
        ``actions[:, -1]`` is the one whose step produced ``next_frame``). ``sampler_sigmas``: the
        noise levels the sampler denoises at; ``sampler_levels_fraction`` of the batch is drawn there.
        ``memory float[B, D]``: the long memory's output after the last context frame (with a memory);
        ``view float[B, C, H, W]``: the view it recalled then (with a view bank).
        ``context_blur_max``: this step's blur, in place of the config's (a training schedule's).
        """
        config = self.training_config
        blur_max = config.context_blur_max if context_blur_max is None else context_blur_max
        batch, device = next_frame.shape[0], next_frame.device
        # Noise on the context frames stands in for the model's own errors in a rollout. The target is
        # taken from the context as the network sees it: a "change" from a noisy last frame includes
        # undoing its noise, so the model learns to repair the frame it continues from; measured
        # from the clean frame, errors would pile up from step to step (as they did: a snapshot at
        # 500 steps turned to static within 8 steps).
        context_sigma = config.context_sigma_max * torch.rand(batch, device=device, generator=generator)
        seen = frames
        if blur_max > 0:  # a dream's frames are blurred where the sampler was unsure
            seen = blur(frames, blur_max * torch.rand(batch, device=device, generator=generator))
        noisy_frames = seen + context_sigma.reshape(-1, 1, 1, 1, 1) * torch.randn(frames.shape, device=device, generator=generator)
        target = self.target(next_frame, noisy_frames)
        log_sigma = config.log_sigma_mean + config.log_sigma_std * torch.randn(batch, device=device, generator=generator)
        sigma = log_sigma.exp().clamp(config.sigma_min, config.sigma_max)
        if sampler_sigmas is not None and config.sampler_levels_fraction > 0:
            # The few levels a 2-3 step sampler visits matter most: train them exactly, often.
            at_levels = torch.rand(batch, device=device, generator=generator) < config.sampler_levels_fraction
            level = sampler_sigmas.to(device)[torch.randint(len(sampler_sigmas), (batch,), device=device, generator=generator)]
            sigma = torch.where(at_levels, level, sigma)
        noise = torch.randn(target.shape, device=device, generator=generator)
        noise = noise + config.offset_noise * torch.randn((batch, target.shape[1], 1, 1), device=device, generator=generator)
        noisy = target + sigma.reshape(-1, 1, 1, 1) * noise

        estimate = self._estimate(noisy, sigma, noisy_frames, actions, context_sigma, memory, view)
        # EDM's loss on the clean estimate D, weighted by 1 / c_out^2: the same as regressing F onto
        # the output that makes D exact, (F - (target - c_skip * noisy) / c_out)^2.
        _, c_out = skip_and_out_scales(sigma.reshape(-1, 1, 1, 1), config.sigma_data)
        error = ((estimate - target) / c_out) ** 2
        if config.changed_pixel_weight == 1.0:
            return error.mean()
        changed = (next_frame - frames[:, -1]).abs().amax(dim=1, keepdim=True) > config.changed_pixel_threshold
        weight = 1.0 + (config.changed_pixel_weight - 1.0) * changed.float()
        # Normalised per sample, so the loss scale does not depend on how much of a frame moved.
        return ((error * weight).mean(dim=(1, 2, 3)) / weight.mean(dim=(1, 2, 3))).mean()

    def remembering(self, memory: torch.Tensor, view: torch.Tensor | None = None) -> RememberingDenoiser:
        """This denoiser with its memory input (and recalled view) fixed, in the sampler's ``Denoiser`` protocol."""
        return RememberingDenoiser(self, memory, view)


class RememberingDenoiser:
    """A ``FrameDenoiser`` bound to one step's memory ``float[B, D]`` (and recalled view), as the sampler calls it."""

    def __init__(self, denoiser: FrameDenoiser, memory: torch.Tensor, view: torch.Tensor | None = None):
        self.denoiser, self.memory, self.view = denoiser, memory, view

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.denoiser.denoise(noisy, sigma, frames, actions, memory=self.memory, view=self.view)

    def to_frame(self, denoised: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return self.denoiser.to_frame(denoised, frames)
