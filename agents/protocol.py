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

    ``reset(seed)`` is called at the start of every episode, before the first ``act``: it forgets
    the episode (frame stacks, plans, held actions). The seed means what it means for
    ``gymnasium.Env.reset``: an int reseeds the agent's own randomness (exploration, noise), so
    ``reset(seed=s)`` always starts the same stream; ``None`` keeps the current stream going, which
    is the constructor's ``seed=`` if it was given one, else fresh unpredictable randomness (OS
    entropy). ``act`` returns one action that ``env.action_space.contains``.

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
