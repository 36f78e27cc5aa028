"""The gradient-free baseline: a DDPO-style policy-gradient update of the same LoRA, at the same reward queries.

Why this baseline and not best-of-n: best-of-n picks the best of n samples at inference, so it
trains nothing and pays n reward queries for every dreamed frame forever; it answers "how good can
sampling get", not "how well does a given budget of reward queries train the adapter". DDPO
(Black et al. 2023) trains the *same* LoRA, in the *same* loop, with the *same* batch of frames per
update and the same truncation; only the gradient estimate differs: the reward's gradient through
the sampler (``RewardGradientAligner``) or the score function of a stochastic sampler with the
reward as a black box (here). Equal updates x batch size = equal reward queries.

The policy: the dream's sampler is deterministic given its initial noise (Euler steps of the
probability-flow ODE), and that noise does not depend on the weights, so the last step is made a
Gaussian policy: the frame is ``mean + exploration * eps``, where ``mean`` is the sampler's output
carrying gradients through its last K steps (quantised straight-through, as the aligner's), and its
log-probability ``-|frame - mean|^2 / (2 exploration^2)`` is what the update differentiates
(DDPO's score-function estimator, DDPO_SF: one on-policy step per batch, so PPO's ratio is 1 and
its clipping has nothing to clip). The rewards score the explored frame quantised to 8 bits, with
no gradient; advantages are the batch's rewards standardised.
"""

from __future__ import annotations

from typing import Any

import torch
from worldsim.agents.lora_alignment import LoraAligner

from worldsim.core.frames import quantize
from worldsim.errors import WorldsimError
from worldsim.rewards import per_sample, valid_mean


class PolicyGradientAligner(LoraAligner):
    """DDPO's score-function update of the LoRA (see the module docstring).

    ``exploration``: the policy's standard deviation per pixel, in ``[-1, 1]`` units (0.05 is about
    6 of 255 levels); the other arguments are ``LoraAligner``'s.
    """

    method = "policy_gradient"

    def __init__(self, env, *, exploration: float = 0.05, **settings: Any):
        if not exploration > 0:
            raise WorldsimError(f"exploration must be > 0, got {exploration!r}")
        self.exploration = float(exploration)
        super().__init__(env, **settings)

    def saved_settings(self) -> dict[str, Any]:
        return super().saved_settings() | {"exploration": self.exploration}

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, float]:
        k = self.grad_steps(generator)
        mean = self.generate(batch, generator, k)
        explored = mean.detach() + self.exploration * torch.randn(mean.shape, generator=generator, device=mean.device)
        self.scored_frames = quantize(explored)
        with torch.no_grad():
            scores = self.rewards.score(self.transition(batch, self.scored_frames))
            rewards = per_sample(scores, self.rewards.weights)
            advantages = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-6)
        with torch.enable_grad():
            log_probability = -((explored - mean) ** 2).flatten(1).sum(dim=1) / (2 * self.exploration**2)
            loss = -(advantages * log_probability).mean()
        optimizer_stats = self.step_optimizer(loss, generator)
        return {
            "reward": float(rewards.mean()),
            **{name: valid_mean(s) for name, s in scores.items()},
            **optimizer_stats,
            "grad_steps": k,
        }
