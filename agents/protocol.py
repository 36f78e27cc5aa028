"""The one interface every worldsim agent follows, in the real env and in the dream alike."""

from __future__ import annotations

from os import PathLike
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym


@runtime_checkable
class Agent(Protocol):
    """An agent acts on the standard observation of its env.

    Whatever preprocessing an agent needs (grayscale, frame stacks, cues from ``info``) lives
    inside it, so the same agent object runs in ``worldsim/MarioReal-v0`` and in the dream.

    ``reset(seed)`` is called at the start of every episode, before the first ``act``; the seed
    makes the agent's own randomness (exploration) reproducible. ``act`` returns one action that
    ``env.action_space.contains``.

    Optional methods, implemented by agents that learn or persist:
    ``learn(env, total_steps)``, ``save(path)`` and the classmethod ``load(path)``.
    """

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> Any: ...


@runtime_checkable
class LearningAgent(Agent, Protocol):
    """An agent that trains on an env and can be saved and loaded."""

    def learn(self, env: gym.Env, total_steps: int) -> None: ...

    def save(self, path: str | PathLike) -> None: ...

    @classmethod
    def load(cls, path: str | PathLike) -> LearningAgent: ...
