"""Does an agent's game last as long in the dream as in the real game? Episode lengths side by side.

For Cooperative Pong an episode is one rally: it ends when a paddle misses the ball (or the game's
``max_cycles`` truncates it). The same agent plays seeded episodes in the real env and in the dream
(each through its Gymnasium joint view); a dream whose end model misses the misses, or sees misses
that did not happen, shows here as longer or shorter rallies, and a dream whose paddles do not
answer the actions as rallies of a different length than the real ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent
from worldsim.eval.episodes import run_episode


@dataclass
class RallyLengths:
    """Episode lengths (steps) of one agent over seeded episodes in one env."""

    env: str
    lengths: list[int]
    ended: list[bool]  # terminated (a miss), not truncated

    @property
    def mean(self) -> float:
        return float(np.mean(self.lengths))

    @property
    def median(self) -> float:
        return float(np.median(self.lengths))

    @property
    def miss_rate(self) -> float:
        return float(np.mean(self.ended))

    def to_dict(self) -> dict:
        return asdict(self) | {"mean": self.mean, "median": self.median, "miss_rate": self.miss_rate}


def rally_lengths(env: gym.Env, agent: Agent, episodes: int, first_seed: int = 0, name: str = "") -> RallyLengths:
    """``episodes`` episodes of ``agent`` in ``env`` from seeds ``first_seed...``."""
    lengths, ended = [], []
    for episode in range(episodes):
        result = run_episode(env, agent, first_seed + episode)
        lengths.append(result.steps)
        ended.append(result.terminated)
    return RallyLengths(name or (env.spec.id if env.spec else type(env.unwrapped).__name__), lengths, ended)


def rally_table(rows: list[RallyLengths]) -> str:
    """A Markdown table of rally lengths, one row per env (or agent)."""
    lines = ["| env | episodes | mean rally (steps) | median | ended by a miss |", "|---|---|---|---|---|"]
    lines += [f"| {r.env} | {len(r.lengths)} | {r.mean:.1f} | {r.median:.0f} | {r.miss_rate:.0%} |" for r in rows]
    return "\n".join(lines)


__all__ = ["RallyLengths", "rally_lengths", "rally_table"]
