"""EDM (Karras et al. 2022) as DIAMOND uses it: how training draws noise, and the preconditioning.

``worldsim.models.denoiser.FrameDenoiser`` wraps an inner network ``F`` so that its output is a
clean-frame estimate

    D(x; sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x; c_noise(sigma), context)

with EDM's coefficients, taken from diffusers' ``EDMEulerScheduler`` (the scheduler the sampler
steps with), so training and sampling cannot disagree on them. Frames are ``float`` in ``[-1, 1]``.

What is denoised is set by ``EDMTraining.prediction``:

* ``"next_frame"``: ``x`` is the next frame itself (DIAMOND);
* ``"change"``: ``x`` is the next frame minus the last context frame. Most of a Mario frame does not
  change in a step, so an untrained denoiser already copies the last frame, and the network spends
  its capacity on what moves (the residual parameterisation of RVD and Delta-IRIS).

``changed_pixel_weight`` multiplies the loss on pixels that differ from the last context frame:
plain MSE is dominated by the static sky, in which a 4x4-pixel Mario is a rounding error.

``context_blur_max`` blurs the context frames before their noise: a few-step sampler's error on a
small fast object is a blur (the mean of the places it could be), not white noise, and a model that
only ever saw sharp context lets a blurred ball fade further at every step of a dream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
    context_blur_max: float = 0.0  # and a Gaussian blur of U(0, max) pixels (standard deviation), against fading
    prediction: str = "next_frame"  # or "change": denoise next frame minus last context frame
    changed_pixel_weight: float = 1.0  # loss weight of pixels that differ from the last context frame
    changed_pixel_threshold: float = 0.03  # |difference| (in [-1, 1] units, any channel) that counts as changed
    sampler_levels_fraction: float = 0.0  # share of training noise drawn at the sampler's own levels

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"edm.prediction must be one of {PREDICTIONS}, got {self.prediction!r}")


PREDICTIONS = ("next_frame", "change")


def blur(frames: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``frames float[B, ..., H, W]`` blurred by a Gaussian of standard deviation ``pixels float[B]``
    (one per sample; 0 leaves a sample as it is), edges replicated.

    Written out (two grouped 1-D convolutions) because the blur differs per sample, which neither
    torchvision's nor kornia's ``gaussian_blur`` takes, and neither is a dependency.
    """
    batch, shape = frames.shape[0], frames.shape
    radius = max(1, int(3 * float(pixels.max()) + 0.5))
    offsets = torch.arange(-radius, radius + 1, device=frames.device, dtype=frames.dtype)
    kernel = torch.exp(-0.5 * (offsets / pixels.clamp_min(1e-3).reshape(-1, 1).to(frames.dtype)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, 2r+1]
    images = frames.reshape(1, -1, shape[-2], shape[-1])  # one channel per image plane, grouped
    kernel = kernel.repeat_interleave(images.shape[1] // batch, dim=0)
    images = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="replicate")
    images = torch.nn.functional.conv2d(images, kernel[:, None, None, :], groups=kernel.shape[0])
    images = torch.nn.functional.conv2d(images, kernel[:, None, :, None], groups=kernel.shape[0])
    return images.reshape(shape)


def skip_and_out_scales(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM's ``c_skip`` and ``c_out`` (the training target needs them apart; diffusers' scheduler
    only applies them together, in ``precondition_outputs``)."""
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2) ** 0.5
    return c_skip, c_out
