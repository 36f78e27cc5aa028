"""A realism critic that keeps learning while the adapter does: the adapter's dreams become its negatives.

Why: a critic trained once, on the base model's dreams, is gamed. It told real from dreamed steps
perfectly (held-out logits +31 against -32), and 100 updates of a LoRA raised its score on the
adapter's dreams to +42, above real steps, with frames that look to the eye like the base model's:
the adapter had removed the sampler's faint grain, the cue the critic relied on (a judge trained on
blurred, re-quantised frames sees no gain; BENCHMARKS.md, "Reward-gradient alignment"). So, as in a GAN,
every alignment update also steps the critic on the frames the adapter just generated (label 0)
against real steps of the game (label 1, ``RealSteps``), with the binary cross-entropy it was
first trained with (``worldsim.train.realism_training``). The realism reward is then the critic's
judgement of the current dreams, and what it rewards moves on once the adapter finds a cue that
fools it.

The critic's steps read frames already generated and scored; they add no reward query.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from worldsim.agents.real_steps import RealSteps

from worldsim.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldsim.core.checkpoint_kinds import REALISM_CRITIC
from worldsim.core.serialization import to_dict
from worldsim.rewards.realism import RealismCritic

CRITIC_STREAM = 1  # RealSteps stream of the critic's real steps


class CriticRefresh:
    """``step(update, previous, dreamed)``: ``steps`` AdamW steps of ``critic`` on real steps
    against the dreamed steps (``previous``, ``dreamed``: ``float[B, C, H, W]``, detached).

    The critic stays frozen (``requires_grad`` off) outside its own steps, so the aligner's
    backward pass never writes its gradients."""

    def __init__(self, critic: RealismCritic, real_steps: RealSteps, steps: int, lr: float):
        self.critic, self.real_steps, self.steps = critic, real_steps, steps
        self.optimizer = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=1e-2)

    def step(self, update: int, previous: torch.Tensor, dreamed: torch.Tensor) -> dict[str, float]:
        size, bce = previous.shape[0], nn.functional.binary_cross_entropy_with_logits
        self.critic.requires_grad_(True)
        try:
            with torch.enable_grad():
                for repeat in range(self.steps):
                    real = self.real_steps.batch(update * self.steps + repeat, size, CRITIC_STREAM)["frames"]
                    real_logits, dreamed_logits = self.critic(real[:, -2], real[:, -1]), self.critic(previous, dreamed)
                    real_loss = bce(real_logits, torch.ones_like(real_logits))
                    dreamed_loss = bce(dreamed_logits, torch.zeros_like(dreamed_logits))
                    loss = real_loss + dreamed_loss
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), 1.0)
                    self.optimizer.step()
        finally:
            self.critic.requires_grad_(False)
        return {"critic_loss_real": float(real_loss.detach()), "critic_loss_dreamed": float(dreamed_loss.detach())}

    def save(self, path: str | os.PathLike) -> None:
        """A realism critic checkpoint (``load_realism_reward`` reads it) with its optimizer."""
        save_checkpoint(path, self.critic, {"kind": REALISM_CRITIC, "critic": to_dict(self.critic.config)}, optimizer=self.optimizer)

    def restore(self, path: str | os.PathLike) -> None:
        checkpoint = load_checkpoint(Path(path), map_location=next(self.critic.parameters()).device)
        load_weights(self.critic, checkpoint)
        if checkpoint.optimizer_state is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer_state)


__all__ = ["CriticRefresh"]
