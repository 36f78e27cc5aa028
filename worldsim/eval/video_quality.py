"""How well a video diffusion model denoises held-out clips: weights-free quality at fixed noise levels.

FVD needs downloaded weights; the denoising loss does not. For each noise level ``sigma``, the same
held-out clips are noised with the same noise (a fixed seed), so every model is scored on exactly
the same inputs, and two numbers are kept:

* ``loss``: EDM's weighted denoising error (what training minimises; 1.0 is an untrained network's
  output of 0 at ``sigma >> sigma_data``);
* ``psnr``: PSNR of the clean estimate against the clean clip, in dB over ``[-1, 1]`` frames.

Two settings: ``"clip"`` denoises whole clips (every frame noised, nothing given), ``"continuation"``
gives the first ``context`` frames clean (at the sampler's context level) and scores the others,
which is what continuing a clip in chunks asks of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldsim.data.sequences import SequenceDataset
from worldsim.models.video_model import VideoModel

SIGMAS = (0.05, 0.2, 0.5, 1.0, 2.0)


@dataclass
class DenoisingReport:
    sigmas: list[float]
    loss: list[float]  # per sigma
    psnr: list[float]  # per sigma, dB
    clips: int
    context: int  # clean frames given first (0: whole clips)

    @property
    def mean_loss(self) -> float:
        return float(np.mean(self.loss))


def heldout_clips(windows: SequenceDataset, count: int) -> torch.Tensor:
    """``count`` windows evenly spread over ``windows`` (the same ones every time): ``uint8[count,
    F, H, W, C]``."""
    indices = np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)
    return torch.stack([windows[int(i)]["frames"] for i in indices])


@torch.no_grad()
def denoising_report(
    model: VideoModel, frames: torch.Tensor, sigmas=SIGMAS, context: int = 0, seed: int = 0, batch_size: int = 8
) -> DenoisingReport:
    """Score ``model`` on ``frames uint8[N, F, H, W, C]`` at each of ``sigmas`` (see the module)."""
    clips = model.clips(frames)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(clips.shape, generator=generator)  # one draw, shared by every level and model
    frames_count = clips.shape[2]
    losses, psnrs = [], []
    for sigma in sigmas:
        weighted, squared = [], []
        for start in range(0, len(clips), batch_size):
            clean, eps = clips[start : start + batch_size], noise[start : start + batch_size]
            levels = torch.full((len(clean), frames_count), float(sigma))
            levels[:, :context] = model.config.sampler.context_sigma
            scored = slice(context, None)
            estimate, error = model.denoiser.denoise_clean(clean, levels, eps)
            weighted.append(error[:, :, scored].mean(dim=(1, 2, 3, 4)))
            squared.append(((estimate - clean)[:, :, scored] ** 2).mean(dim=(1, 2, 3, 4)))
        losses.append(float(torch.cat(weighted).mean()))
        mse = float(torch.cat(squared).mean())
        psnr = 10 * math.log10(4.0 / mse) if mse > 0 else float("inf")  # peak-to-peak of [-1, 1] is 2
        psnrs.append(psnr)
    return DenoisingReport([float(s) for s in sigmas], losses, psnrs, len(clips), context)
