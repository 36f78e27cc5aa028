"""Play whole episodes with an agent and summarise them (returns, Mario's x_pos); ``worldsim rollout``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent
from worldsim.errors import WorldsimError


@dataclass
class EpisodeResult:
    seed: int
    steps: int
    episode_return: float
    final_info: dict[str, Any]
    terminated: bool = False  # the episode ended in the game (not truncated, not cut at max_steps)

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
    steps, total, terminated = 0, 0.0, False
    while max_steps is None or steps < max_steps:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
        steps += 1
        total += float(reward)
        if on_step is not None:
            on_step(observation)
        if terminated or truncated:
            break
    return EpisodeResult(seed, steps, total, dict(info), bool(terminated))


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


def rollout_from_configs(
    env_name: str,
    agent_spec: str,
    episodes: int = 1,
    overrides: list[str] | None = None,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    video: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> list[EpisodeResult]:
    """``worldsim rollout``: ``episodes`` episodes (seeds ``seed, seed + 1, ...``) of one agent in an
    env built from their configs, a line per episode to ``log``, every frame to ``video`` if given."""
    from worldsim.envs import make_env
    from worldsim.eval.agent_configs import build_agents, single_agent, split_overrides
    from worldsim.video import check_video_path, write_video

    if episodes <= 0:
        raise WorldsimError(f"--episodes must be positive, got {episodes}")
    video = check_video_path(video) if video else None
    name = single_agent(agent_spec, "rollout plays")
    env_overrides, agent_overrides = split_overrides(list(overrides or []), [name])
    env = make_env(env_name, env_overrides, render_mode="rgb_array" if video else None)
    (share,) = build_agents([(name, 1.0)], agent_overrides, env, need_trained=True)
    frames: list[np.ndarray] = []
    results = []
    for episode in range(episodes):
        result = run_episode(
            env, share.agent, seed + episode, on_step=(lambda _: frames.append(env.render())) if video else None, max_steps=max_steps
        )
        x_pos = f", x_pos {result.x_pos}" if result.x_pos is not None else ""
        log(f"episode {episode} (seed {result.seed}): {result.steps} steps, return {result.episode_return:.1f}{x_pos}")
        results.append(result)
    if video:
        write_video(frames, video, fps=env.metadata.get("render_fps", 15))
        log(f"wrote {len(frames)} frames to {video}")
    env.close()
    return results
