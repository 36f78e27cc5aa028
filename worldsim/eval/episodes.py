"""Play whole episodes with an agent and summarise them (returns, Mario's x_pos)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent


@dataclass
class EpisodeResult:
    seed: int
    steps: int
    episode_return: float
    final_info: dict[str, Any]

    @property
    def x_pos(self) -> int | None:
        return int(self.final_info["x_pos"]) if "x_pos" in self.final_info else None


def run_episode(
    env: gym.Env,
    agent: Agent,
    seed: int,
    on_step: Callable[[np.ndarray], None] | None = None,
    max_steps: int | None = None,
) -> EpisodeResult:
    """One episode from ``env.reset(seed=seed)``; ``on_step(observation)`` sees every observation."""
    observation, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    if on_step is not None:
        on_step(observation)
    steps, total = 0, 0.0
    while max_steps is None or steps < max_steps:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
        steps += 1
        total += float(reward)
        if on_step is not None:
            on_step(observation)
        if terminated or truncated:
            break
    return EpisodeResult(seed, steps, total, dict(info))


def evaluate_agent(env: gym.Env, agent: Agent, episodes: int = 10, first_seed: int = 0) -> dict[str, float]:
    """Median and mean over ``episodes`` seeded episodes (seeds ``first_seed...``).

    Returns ``return_median``, ``return_mean``, ``steps_median`` and, for Mario,
    ``x_pos_median``, ``x_pos_max`` and ``flag_rate``.
    """
    results = [run_episode(env, agent, first_seed + k) for k in range(episodes)]
    returns = np.array([r.episode_return for r in results])
    metrics = {
        "return_median": float(np.median(returns)),
        "return_mean": float(returns.mean()),
        "steps_median": float(np.median([r.steps for r in results])),
    }
    if results and results[0].x_pos is not None:
        xs = np.array([r.x_pos for r in results])
        metrics |= {
            "x_pos_median": float(np.median(xs)),
            "x_pos_max": float(xs.max()),
            "flag_rate": float(np.mean([bool(r.final_info.get("flag_get", False)) for r in results])),
        }
    return metrics
