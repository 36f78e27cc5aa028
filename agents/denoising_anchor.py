"""The world model's own denoising loss on real steps, as an anchor for reward alignment.

Why: a fixed reward network can be gamed. The first alignment run on a fixed realism critic raised
the critic's score from -20 to -4.5 while next-frame PSNR on held-out episodes fell from 23.3 to
22.4 dB: the adapter learned what the critic likes, not what the game looks like. ReFL (Xu et al.
2023, ImageReward) regularises reward feedback learning with the pre-training loss on real data;
this is that term for a world model: EDM's weighted denoising loss of the adapted denoiser on
windows of the dataset the world model was trained on, under their recorded actions. It costs no
reward query, so the aligners still compare at equal queries.

Rolled out (``rollout > 0``): the one-step anchor held teacher-forced PSNR at the base's while
16-step rollouts lost 0.3-0.5 dB, so the anchor can also be asked of the frames the adapter will
actually see. The adapted model first dreams ``r`` steps (``r`` drawn in ``0..rollout`` per update,
without gradients) from the window's real context under the recorded actions; the loss is then the
denoising loss of the real frame after them, given the last ``K`` frames of that dream: "from your
own frames, still draw the game". Scheduled sampling (Bengio et al. 2015) and DAgger's fix for
compounding errors, as a ReFL term.
"""

from __future__ import annotations

import numpy as np
import torch
from worldsim.agents.real_steps import RealSteps

from worldsim.models.world_model import WorldModel

ANCHOR_STREAM = 0  # RealSteps stream of the anchor's windows
ROLLOUT_STREAM = 2  # the draw of each update's dreamed steps (stream 1 is the critic's)


class DenoisingAnchor:
    """``loss(update, generator)``: the denoising loss of ``model`` on ``batch_size`` real windows
    of ``real_steps`` (the windows of update ``u`` are always the same ones), after ``0..rollout``
    dreamed steps (``rollout_steps(update)``; 0: the context is real, teacher-forced)."""

    def __init__(self, model: WorldModel, real_steps: RealSteps, batch_size: int, rollout: int = 0):
        self.model, self.real_steps, self.batch_size, self.rollout = model, real_steps, batch_size, rollout

    def rollout_steps(self, update: int) -> int:
        """How many steps update ``update``'s windows are dreamed before the anchored one."""
        if self.rollout == 0:
            return 0
        return int(np.random.default_rng((self.real_steps.seed, ROLLOUT_STREAM, update)).integers(self.rollout + 1))

    def loss(self, update: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A scalar tensor carrying gradients to the denoiser's trainable (LoRA) parameters."""
        dreamed = self.rollout_steps(update)
        batch = self.real_steps.batch(update, self.batch_size, ANCHOR_STREAM, steps_after=dreamed)
        frames, actions = batch["frames"], batch["actions"]
        k = self.model.context_length
        context = self.dream(frames[:, :k], actions, dreamed, generator)
        with torch.enable_grad():
            return self.model.denoiser.loss(
                frames[:, k + dreamed],
                context,
                actions[:, dreamed + 1 : dreamed + k + 1],
                generator=generator,
                sampler_sigmas=self.model.sampler.sigmas,
            )

    @torch.no_grad()
    def dream(self, context: torch.Tensor, actions: torch.Tensor, steps: int, generator: torch.Generator | None) -> torch.Tensor:
        """The last ``K`` frames ``float[B, K, C, H, W]`` after dreaming ``steps`` steps from ``context``
        (``float[B, K, C, H, W]``, real) under ``actions[:, 1 : steps + K]`` (``int64[B, >= K + steps]``)."""
        k = context.shape[1]
        for step in range(steps):
            next_frame = self.model.sampler.sample(self.model.denoiser, context, actions[:, step + 1 : step + k + 1], generator=generator)
            context = torch.cat([context[:, 1:], next_frame[:, None]], dim=1)
        return context


__all__ = ["DenoisingAnchor"]
