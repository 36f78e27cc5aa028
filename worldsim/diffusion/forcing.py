"""Diffusion forcing (Chen et al. 2024): every token of a sequence carries its own noise level.

Training noises each token independently (``DiffusionForcing.loss``); sampling follows a
*schedule*, a matrix ``levels[s, t]`` giving the noise level of token ``t`` after sampling step
``s``, so that the near future can be made clean while the far future is still noisy
(``pyramid_schedule``) or every token denoised together, as a full-sequence model such as Diffuser
does (``full_sequence_schedule``).

The noise levels are the training timesteps of a cosine (``squaredcos_cap_v2``) DDPM schedule from
diffusers' ``DDPMScheduler``. The update itself is written here: diffusers' schedulers step a whole
sample from one shared timestep to the next, while diffusion forcing moves each token between its
own pair of levels (a DDIM update per token, with the scheduler's ``alphas_cumprod``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler
from torch import nn


@dataclass
class ForcingConfig:
    """Noise levels (training timesteps) and the sampling resolution."""

    train_levels: int = 1000  # DDPM timesteps
    sampling_levels: int = 20  # levels a token passes through when sampled (DDIM sub-sequence)


def pyramid_schedule(num_tokens: int, sampling_levels: int, slope: float = 1, first_token_clean: bool = False) -> np.ndarray:
    """Near future first: token ``t`` starts denoising ``ceil(slope * t)`` steps after token 0
    (a slope below 1 starts neighbouring tokens together: fewer steps in all).

    Returns ``int[S + 1, num_tokens]`` of sampling levels in ``[0, sampling_levels]``: row 0 is
    all ``sampling_levels`` (pure noise), the last row all 0 (clean), and every token's level never
    increases from one row to the next. With ``first_token_clean`` token 0 is given (level 0
    throughout), as when it holds the current state.
    """
    if num_tokens < 1 or sampling_levels < 1 or slope < 0:
        raise ValueError(f"need num_tokens >= 1, sampling_levels >= 1, slope >= 0; got {num_tokens}, {sampling_levels}, {slope}")
    delays = np.ceil(slope * np.arange(num_tokens) - 1e-9).astype(np.int64)
    steps = sampling_levels + int(delays[-1])
    s = np.arange(steps + 1)[:, None]
    levels = np.clip(sampling_levels - s + delays[None, :], 0, sampling_levels)
    if first_token_clean:
        levels[:, 0] = 0
    return levels.astype(np.int64)


def full_sequence_schedule(num_tokens: int, sampling_levels: int, first_token_clean: bool = False) -> np.ndarray:
    """Every token denoised together (Diffuser-style full-sequence diffusion): a pyramid of slope 0."""
    return pyramid_schedule(num_tokens, sampling_levels, slope=0, first_token_clean=first_token_clean)


class DiffusionForcing(nn.Module):
    """Per-token noise levels around a sequence network ``network(x_noisy [B, T, D], t [B, T]) -> x0``.

    The network predicts the clean tokens (``x0``); ``t`` are DDPM timesteps in
    ``[0, train_levels)``, one per token.
    """

    def __init__(self, network: nn.Module, config: ForcingConfig | None = None):
        super().__init__()
        self.network = network
        self.config = config or ForcingConfig()
        scheduler = DDPMScheduler(num_train_timesteps=self.config.train_levels, beta_schedule="squaredcos_cap_v2")
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.float(), persistent=False)
        self.register_buffer("level_timesteps", self._level_timesteps(self.config.sampling_levels), persistent=False)

    def _level_timesteps(self, sampling_levels: int) -> torch.Tensor:
        # Sampling level j in [0, sampling_levels] -> DDPM timestep; level 0 is "clean" (no noise).
        return torch.from_numpy(np.linspace(0, self.config.train_levels - 1, sampling_levels + 1).round().astype(np.int64))

    def use_sampling_levels(self, sampling_levels: int) -> None:
        """Sample through ``sampling_levels`` levels instead of the configured number (fewer: coarser
        DDIM steps, a faster sampler; the network is trained on all ``train_levels``)."""
        if sampling_levels < 1:
            raise ValueError(f"need sampling_levels >= 1, got {sampling_levels}")
        self.config.sampling_levels = int(sampling_levels)
        self.level_timesteps = self._level_timesteps(sampling_levels).to(self.alphas_cumprod.device)

    def _alpha_bar(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[timesteps]

    def forward(self, clean: torch.Tensor) -> torch.Tensor:
        """The training loss (``forward`` so that ``accelerate``'s distributed wrapper sees it)."""
        return self.loss(clean)

    def loss(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE of the ``x0`` prediction, each token of ``clean float[B, T, D]`` at its own random level."""
        batch, tokens, _ = clean.shape
        timesteps = torch.randint(0, self.config.train_levels, (batch, tokens), device=clean.device, generator=generator)
        noise = torch.randn(clean.shape, device=clean.device, generator=generator)
        alpha_bar = self._alpha_bar(timesteps)[..., None]
        noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
        return nn.functional.mse_loss(self.network(noisy, timesteps), clean)

    def sample(
        self,
        shape: tuple[int, int, int],
        schedule: np.ndarray,
        *,
        condition: Callable[[torch.Tensor], torch.Tensor] | None = None,
        score: Callable[[torch.Tensor], torch.Tensor] | None = None,
        guidance_scale: float = 0.0,
        mc_group: int = 1,
        through_network: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Sample ``float[B, T, D]`` along ``schedule`` (``int[S + 1, T]`` sampling levels).

        At every sampling step the network estimates the clean tokens ``x0`` from the noisy ones;
        ``condition(x0) -> x0`` overwrites what is known (the current state, in token 0).

        Guidance: ``score(x0) -> float[B]`` is to be increased (e.g. minus the distance of every
        planned position to the goal). Its gradient is taken with respect to the noisy tokens,
        through the network: with a causal network a token also feels the score of the future
        tokens it leads to. ``guidance_scale`` times that gradient moves the estimates of the tokens
        that are still noisy. Monte-Carlo guidance: ``mc_group`` consecutive rows of the batch are
        samples of one problem, and their gradients are averaged, so each token is guided by the
        expected score over several sampled futures rather than by one.
        ``through_network=False`` takes the gradient with respect to the clean estimate instead:
        no backward pass through the network (about 4x cheaper on a CPU), but each token then
        feels only its own score.

        A network whose ``causal`` attribute is true (token ``t`` reads tokens ``<= t`` only, as the
        trajectory transformer's) is run at each step on the tokens up to the last one that moves,
        unless guidance goes through the network (the gradient of the far future's score needs the
        far future's estimates). The result is the same; a pyramid schedule costs about a quarter
        less.
        """
        levels = torch.as_tensor(schedule, device=device)
        batch, tokens, _ = shape
        if levels.ndim != 2 or levels.shape[1] != tokens:
            raise ValueError(f"schedule must be int[S + 1, {tokens}], got {tuple(levels.shape)}")
        if batch % mc_group:
            raise ValueError(f"batch {batch} is not a whole number of Monte-Carlo groups of {mc_group}")
        guided = score is not None and guidance_scale > 0
        causal = bool(getattr(self.network, "causal", False))
        x = torch.randn(shape, device=device, generator=generator)
        if condition is not None:
            x = condition(x)
        for s in range(1, len(levels)):
            level_now, level_next = levels[s - 1], levels[s]
            moving = level_now != level_next
            if not moving.any():
                continue
            with torch.enable_grad() if guided else torch.no_grad():
                x_in = x.detach().requires_grad_(guided and through_network)
                if causal and not (guided and through_network):
                    # A causal network's estimates of the tokens up to the last moving one do not
                    # depend on the tokens after it, and those do not move: leave them out.
                    end = int(moving.nonzero().max()) + 1
                    head = self.network(x_in[:, :end], self.level_timesteps[level_now[:end]][None].expand(batch, -1))
                    x0 = torch.cat([head, x_in[:, end:]], dim=1)
                else:
                    x0 = self.network(x_in, self.level_timesteps[level_now][None].expand(batch, -1))
                if not through_network:
                    x0 = x0.detach().requires_grad_(guided)
                if condition is not None:
                    x0 = condition(x0)
                if guided:
                    grad = torch.autograd.grad(score(x0).sum(), x_in if through_network else x0)[0]
                    if mc_group > 1:
                        grad = (
                            grad.reshape(-1, mc_group, tokens, shape[2]).mean(1, keepdim=True).expand(-1, mc_group, -1, -1).reshape(shape)
                        )
                    x0 = x0 + guidance_scale * grad * (level_now > 0)[None, :, None]
            x = torch.where(moving[None, :, None], self._ddim_step(x.detach(), x0.detach(), level_now, level_next), x)
            if condition is not None:
                x = condition(x)
        return x.detach()

    def _ddim_step(self, x: torch.Tensor, x0: torch.Tensor, level_now: torch.Tensor, level_next: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM move of every token from its level to the next, given ``x0``."""
        one = torch.ones((), device=x.device)
        alpha_now = torch.where(level_now > 0, self._alpha_bar(self.level_timesteps[level_now]), one)[None, :, None]
        alpha_next = torch.where(level_next > 0, self._alpha_bar(self.level_timesteps[level_next]), one)[None, :, None]
        eps = (x - alpha_now.sqrt() * x0) / (1 - alpha_now).clamp_min(1e-8).sqrt()
        eps = torch.where((level_now > 0)[None, :, None], eps, torch.zeros_like(eps))
        return alpha_next.sqrt() * x0 + (1 - alpha_next).sqrt() * eps
