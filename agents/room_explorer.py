"""An explorer for MiniWorld: it walks about and often looks away and back.

A dream can only learn to remember from data in which remembering pays: a view that left the
frame and returns. So besides walking (an action held for a few steps, forward most often), the
explorer often turns one way for ``n`` steps and straight back the same ``n`` steps, which brings
back every view it turned away from, in reverse order. It plays the room (``Discrete(4)``: turns,
forward, back) and the panoramic four rooms (``Discrete(3)``: no back).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.errors import WorldsimError

TURN_LEFT, TURN_RIGHT, FORWARD, BACK = 0, 1, 2, 3
WALK_WEIGHTS = np.array([0.2, 0.2, 0.5, 0.1])  # turn left, turn right, forward, back (if the env has it)


class RoomExplorerAgent:
    """Plans a short sequence of actions at a time and plays it out.

    Args:
        env: an env with MiniWorld's first actions, ``Discrete(4)`` (``worldsim/MiniWorldRoom-v0``) or
            ``Discrete(3)`` (``worldsim/MiniWorldPanorama-v0``), or a dream of one.
        look_back: probability that the next plan is a look away and back (else a walk).
        max_turn: the longest look away, in turn steps (15 degrees each).
        max_hold: the most steps a walking action is held.
        seed: seeds the plans (the protocol's meaning of ``reset(seed)``).
    """

    def __init__(self, env: gym.Env, look_back: float = 0.5, max_turn: int = 12, max_hold: int = 6, seed: int | None = None):
        if not isinstance(env.action_space, gym.spaces.Discrete) or env.action_space.n not in (3, 4):
            raise WorldsimError(
                f"the room explorer acts in Discrete(4) (turn left/right, forward, back) or Discrete(3) (no back), the env has {env.action_space}"
            )
        weights = WALK_WEIGHTS[: env.action_space.n]
        self.walk_weights = weights / weights.sum()
        if not 0.0 <= look_back <= 1.0:
            raise WorldsimError(f"look_back is a probability, got {look_back}")
        if int(max_turn) < 1 or int(max_hold) < 1:
            raise WorldsimError(f"max_turn and max_hold must be >= 1, got {max_turn} and {max_hold}")
        self.look_back, self.max_turn, self.max_hold = float(look_back), int(max_turn), int(max_hold)
        self.rng = np.random.default_rng(seed)
        self.plan: list[int] = []

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.plan = []

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> int:
        if not self.plan:
            self.plan = self._next_plan()
        return self.plan.pop(0)

    def _next_plan(self) -> list[int]:
        if self.rng.random() < self.look_back:
            turns = int(self.rng.integers(1, self.max_turn + 1))
            away = int(self.rng.integers(2))  # TURN_LEFT or TURN_RIGHT
            return [away] * turns + [1 - away] * turns
        action = int(self.rng.choice(len(self.walk_weights), p=self.walk_weights))
        return [action] * int(self.rng.integers(1, self.max_hold + 1))
