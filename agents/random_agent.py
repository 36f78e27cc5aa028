"""Uniformly random actions: the floor every other agent is measured against."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym


class RandomAgent:
    """Samples from the env's action space; ``seed`` (or ``reset(seed)``) seeds it, else OS entropy."""

    def __init__(self, env: gym.Env, seed: int | None = None):
        # a copy: seeding the agent must not reseed the env's own action space (nor share its stream)
        self.action_space = copy.deepcopy(env.action_space)
        self.action_space.seed(seed)

    def reset(self, seed: int | None = None) -> None:
        """A seed reseeds the sampler; ``None`` keeps its stream (the protocol's meaning)."""
        if seed is not None:
            self.action_space.seed(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> Any:
        return self.action_space.sample()
