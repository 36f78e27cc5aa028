"""Uniformly random actions: the floor every other agent is measured against."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym


class RandomAgent:
    """Samples from the env's action space, seeded by ``reset(seed)``."""

    def __init__(self, env: gym.Env):
        # a copy: seeding the agent must not reseed the env's own action space
        self.action_space = copy.deepcopy(env.action_space)

    def reset(self, seed: int | None = None) -> None:
        self.action_space.seed(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> Any:
        return self.action_space.sample()
