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

    def mean_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Percentile-bootstrap interval of the mean: rally lengths are long-tailed, few episodes vary a lot."""
        return _bootstrap_interval([self.lengths], lambda means: means[0], confidence)

    def to_dict(self) -> dict:
        return asdict(self) | {"mean": self.mean, "median": self.median, "miss_rate": self.miss_rate, "mean_95": self.mean_interval()}


def mean_ratio(numerator: RallyLengths, denominator: RallyLengths, confidence: float = 0.95) -> tuple[float, float, float]:
    """``numerator.mean / denominator.mean`` and its bootstrap interval (each env's episodes resampled on their own)."""
    low, high = _bootstrap_interval([numerator.lengths, denominator.lengths], lambda means: means[0] / means[1], confidence)
    return numerator.mean / denominator.mean, low, high


def _bootstrap_interval(samples: list[list[int]], statistic, confidence: float, resamples: int = 10_000) -> tuple[float, float]:
    # A few lines of numpy instead of scipy.stats.bootstrap: scipy is not among worldsim's dependencies.
    rng = np.random.default_rng(0)  # fixed: the same lengths give the same interval
    means = [rng.choice(np.asarray(values, np.float64), (resamples, len(values))).mean(axis=1) for values in samples]
    values = statistic(means)
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def rally_lengths(env: gym.Env, agent: Agent, episodes: int, first_seed: int = 0, name: str = "") -> RallyLengths:
    """``episodes`` episodes of ``agent`` in ``env`` from seeds ``first_seed...``."""
    lengths, ended = [], []
    for episode in range(episodes):
        result = run_episode(env, agent, first_seed + episode)
        lengths.append(result.steps)
        ended.append(result.terminated)
    return RallyLengths(name or (env.spec.id if env.spec else type(env.unwrapped).__name__), lengths, ended)


def rally_table(rows: list[RallyLengths]) -> str:
    """A Markdown table of rally lengths, one row per env (or agent); each later row's mean against the first's."""
    lines = [
        "| env | episodes | mean rally (steps) [95% bootstrap] | median | ended by a miss | mean / first row's [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r.mean_interval()
        ratio = "" if r is rows[0] else "{:.2f} [{:.2f}, {:.2f}]".format(*mean_ratio(r, rows[0]))
        lines.append(
            f"| {r.env} | {len(r.lengths)} | {r.mean:.1f} [{low:.1f}, {high:.1f}] | {r.median:.0f} | {r.miss_rate:.0%} | {ratio} |"
        )
    return "\n".join(lines)


__all__ = ["RallyLengths", "mean_ratio", "rally_lengths", "rally_table"]
