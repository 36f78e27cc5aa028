"""The world model's own denoising loss on real steps, as an anchor for reward alignment.

Why: a fixed reward network can be gamed. The first alignment run on a fixed realism critic raised
the critic's score from -20 to -4.5 while next-frame PSNR on held-out episodes fell from 23.3 to
22.4 dB: the adapter learned what the critic likes, not what the game looks like. ReFL (Xu et al.
2023, ImageReward) regularises reward feedback learning with the pre-training loss on real data;
this is that term for a world model: EDM's weighted denoising loss of the adapted denoiser on
windows of the dataset the world model was trained on, under their recorded actions. It costs no
reward query, so the aligners still compare at equal queries.
"""

from __future__ import annotations

import torch
from worldsim.agents.real_steps import RealSteps

from worldsim.models.world_model import WorldModel

ANCHOR_STREAM = 0  # RealSteps stream of the anchor's windows


class DenoisingAnchor:
    """``loss(update, generator)``: the denoising loss of ``model`` on ``batch_size`` real windows
    of ``real_steps`` (the windows of update ``u`` are always the same ones)."""

    def __init__(self, model: WorldModel, real_steps: RealSteps, batch_size: int):
        self.model, self.real_steps, self.batch_size = model, real_steps, batch_size

    def loss(self, update: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A scalar tensor carrying gradients to the denoiser's trainable (LoRA) parameters."""
        batch = self.real_steps.batch(update, self.batch_size, ANCHOR_STREAM)
        frames, actions = batch["frames"], batch["actions"]
        k = self.model.context_length
        with torch.enable_grad():
            return self.model.denoiser.loss(
                frames[:, k], frames[:, :k], actions[:, 1:], generator=generator, sampler_sigmas=self.model.sampler.sigmas
            )


__all__ = ["DenoisingAnchor"]
