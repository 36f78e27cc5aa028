"""Rewards of generated transitions, for reward-gradient alignment: each differentiable, each its own module.

* ``realism`` (``realism.py``): a critic trained on real against dreamed steps; its logit;
* ``presence`` (``presence.py``): a detector trained on real frames finds Mario; its confidence that
  the generated frame shows him near where he was;
* ``consistency`` (``consistency.py``): the shipped inverse-dynamics probe's log-probability of the
  action the step was generated under;
* ``scroll`` (``scroll.py``, no network): the ground of the generated frame is the previous frame's
  shifted, as the real game scrolls it;
* ``ground`` (``ground.py``, no network): the ground of the generated frame is drawn with the game's
  own tile (tiles estimated from real frames, shipped: ground-mario-v0).

Every reward scores a ``Transition`` and returns ``Scores`` (``transition.py``). ``load_rewards``
builds them from a spec such as ``"realism+presence"`` or ``"realism:0.5+consistency"`` (a weight
after the colon; 1 without) and their checkpoint folders.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from worldsim.errors import WorldsimError
from worldsim.rewards.transition import Reward, Scores, Transition, per_sample, valid_mean

# name -> its loader "module:function"; each takes a checkpoint folder, or None for the shipped network
REWARDS: dict[str, str] = {
    "realism": "worldsim.rewards.realism:load_realism_reward",  # shipped: realism-mario-v0
    "presence": "worldsim.rewards.presence:load_presence_reward",  # shipped: presence-mario-v0
    "consistency": "worldsim.rewards.consistency:load_consistency_reward",  # shipped: idm-mario-v0
    "scroll": "worldsim.rewards.scroll:load_scroll_reward",  # no network
    "ground": "worldsim.rewards.ground:load_ground_reward",  # no network; shipped tiles: ground-mario-v0
}


def parse_reward_spec(spec: str) -> dict[str, float]:
    """``"realism+presence:0.5"`` -> ``{"realism": 1.0, "presence": 0.5}``; unknown names and bad
    weights are one error."""
    weights: dict[str, float] = {}
    for part in spec.split("+"):
        name, _, weight = part.strip().partition(":")
        if name not in REWARDS:
            raise WorldsimError(f"unknown reward {name!r} in {spec!r}: choose from {', '.join(REWARDS)}, joined with + (realism+presence)")
        if name in weights:
            raise WorldsimError(f"reward {name!r} appears twice in {spec!r}: name each reward once")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise WorldsimError(
                f"reward weight {weight!r} in {spec!r} is not a number: write NAME:WEIGHT, e.g. realism:0.5+presence"
            ) from None
    return weights


@dataclass
class RewardSet:
    """Named rewards and their weights; ``history_frames`` is what a ``Transition`` must carry for all."""

    rewards: dict[str, Reward]
    weights: dict[str, float]

    @property
    def history_frames(self) -> int:
        return max(reward.history_frames for reward in self.rewards.values())

    def score(self, transition: Transition) -> dict[str, Scores]:
        return {name: reward.score(transition) for name, reward in self.rewards.items()}

    def modules(self) -> list[nn.Module]:
        return [reward for reward in self.rewards.values() if isinstance(reward, nn.Module)]


def load_rewards(
    spec: str | dict[str, float], paths: dict[str, str | os.PathLike | None] | None = None, device: str | torch.device = "cpu"
) -> RewardSet:
    """The rewards that ``spec`` names, their networks loaded from ``paths[name]`` or, without one, the
    shipped networks (frozen, eval mode)."""
    weights = parse_reward_spec(spec) if isinstance(spec, str) else dict(spec)
    rewards: dict[str, Reward] = {}
    for name in weights:
        loader, path = REWARDS[name], (paths or {}).get(name)
        module_name, function_name = loader.split(":")
        load = getattr(importlib.import_module(module_name), function_name)
        rewards[name] = load(path, device=device)
    return RewardSet(rewards, weights)


__all__ = ["REWARDS", "Reward", "RewardSet", "Scores", "Transition", "load_rewards", "parse_reward_spec", "per_sample", "valid_mean"]
