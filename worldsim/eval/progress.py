"""How far does an agent get in the dream, against the real game from the same start?

For each seed the real game is reset, and the dream is started from that same first frame (and
``x_pos``). Two dreams are measured:

* **same actions**: the agent plays the real game; the dream receives the very same actions. At the
  real episode's end, the dream's ``x_pos`` (start plus the end model's predicted moves) is compared
  with the real one, and a dream that ended before the real episode counts as a false end;
* **closed loop**: the agent plays the dream itself, seeing only dreamed frames, for as many steps as
  the real episode lasted; its progress is compared with the real one.

A dream that does not answer the actions, or whose end model ends episodes that go on, falls short
here in a way whole-frame PSNR never shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent


@dataclass
class ProgressReport:
    seeds: list[int] = field(default_factory=list)
    real_progress: list[float] = field(default_factory=list)  # final minus first x_pos, real game
    replay_progress: list[float] = field(default_factory=list)  # the dream under the same actions
    closed_loop_progress: list[float] = field(default_factory=list)  # the agent playing the dream
    real_steps: list[int] = field(default_factory=list)
    replay_false_end: list[bool] = field(default_factory=list)  # the dream ended before the real episode
    closed_loop_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self) | self.summary()

    def summary(self) -> dict[str, float]:
        real = np.asarray(self.real_progress)
        return {
            "episodes": len(self.seeds),
            "real_progress_median": float(np.median(real)),
            "replay_progress_median": float(np.median(self.replay_progress)),
            "closed_loop_progress_median": float(np.median(self.closed_loop_progress)),
            "replay_progress_error_median": float(np.median(np.abs(np.asarray(self.replay_progress) - real))),
            "replay_false_end_rate": float(np.mean(self.replay_false_end)),
        }

    def table(self) -> str:
        s = self.summary()
        rows = [
            ("real game: median x progress", f"{s['real_progress_median']:.0f}"),
            ("dream, same actions: median x progress", f"{s['replay_progress_median']:.0f} (median error {s['replay_progress_error_median']:.0f})"),
            ("dream, agent plays the dream: median x progress", f"{s['closed_loop_progress_median']:.0f}"),
            ("dream ended before the real episode", f"{s['replay_false_end_rate']:.0%} of {s['episodes']} episodes"),
        ]
        return "\n".join(["| from the same start | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def _start_dream(dream: gym.Env, observation: np.ndarray, x_pos: float, seed: int):
    return dream.reset(seed=seed, options={"frames": observation[None], "actions": np.zeros(1, np.int64), "x_pos": x_pos})


def dream_vs_real_progress(dream: gym.Env, real: gym.Env, agent: Agent, seeds: Sequence[int], max_steps: int = 400) -> ProgressReport:
    """Play ``agent`` from each seed's real start in the real game and in the dream (see the module)."""
    report = ProgressReport()
    for seed in seeds:
        observation, info = real.reset(seed=seed)
        start_x = float(info["x_pos"])
        _, dream_info = _start_dream(dream, observation, start_x, seed)
        agent.reset(seed=seed)
        dream_ended_at = None
        steps = 0
        for steps in range(1, max_steps + 1):
            action = agent.act(observation, info)
            observation, _, terminated, truncated, info = real.step(action)
            if dream_ended_at is None:
                _, _, dream_terminated, _, dream_info = dream.step(action)
                if dream_terminated:
                    dream_ended_at = steps
            if terminated or truncated:
                break
        report.seeds.append(int(seed))
        report.real_steps.append(steps)
        report.real_progress.append(float(info["x_pos"]) - start_x)
        report.replay_progress.append(float(dream_info["x_pos"]) - start_x)
        report.replay_false_end.append(dream_ended_at is not None and dream_ended_at < steps)

        # Closed loop: the agent sees only the dream, for as long as the real episode lasted.
        first, first_info = real.reset(seed=seed)
        dream_observation, dream_info = _start_dream(dream, first, float(first_info["x_pos"]), seed)
        agent.reset(seed=seed)
        played = 0
        for played in range(1, steps + 1):
            dream_observation, _, terminated, truncated, dream_info = dream.step(agent.act(dream_observation, dream_info))
            if terminated or truncated:
                break
        report.closed_loop_progress.append(float(dream_info["x_pos"]) - start_x)
        report.closed_loop_steps.append(played)
    return report


@dataclass
class ConstantActionReport:
    """Mean x progress and reward over ``steps`` steps of one held action, real vs dream, per action."""

    steps: int
    episodes: int
    actions: list[str]
    real_progress: list[float]
    dream_progress: list[float]
    real_reward: list[float]
    dream_reward: list[float]

    def table(self) -> str:
        lines = [
            f"| action held {self.steps} steps | real x progress | dream x progress | real reward | dream reward |",
            "|---|---:|---:|---:|---:|",
        ]
        for i, name in enumerate(self.actions):
            lines.append(
                f"| {name} | {self.real_progress[i]:.0f} | {self.dream_progress[i]:.0f} | {self.real_reward[i]:.0f} | {self.dream_reward[i]:.0f} |"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def constant_action_progress(dream: gym.Env, real: gym.Env, seeds: Sequence[int], steps: int = 20) -> ConstantActionReport:
    """Each action held for ``steps`` steps from each seed's real start, in the real game and in the
    dream started from the same frame: do progress and reward answer the action (NOOP and LEFT
    must not earn rightward progress)? Episodes that end early count what they reached."""
    meanings = real.unwrapped.get_action_meanings()
    results = np.zeros((4, len(meanings), len(seeds)))
    for a in range(len(meanings)):
        for j, seed in enumerate(seeds):
            observation, info = real.reset(seed=seed)
            start_x = float(info["x_pos"])
            _, dream_info = _start_dream(dream, observation, start_x, seed)
            real_total = dream_total = 0.0
            real_done = dream_done = False
            for _ in range(steps):
                if not real_done:
                    _, reward, terminated, truncated, info = real.step(a)
                    real_total += reward
                    real_done = terminated or truncated
                if not dream_done:
                    _, reward, terminated, truncated, dream_info = dream.step(a)
                    dream_total += reward
                    dream_done = terminated or truncated
            results[:, a, j] = [float(info["x_pos"]) - start_x, float(dream_info["x_pos"]) - start_x, real_total, dream_total]
    means = results.mean(axis=2)
    return ConstantActionReport(steps, len(seeds), list(meanings), *[list(map(float, row)) for row in means])
