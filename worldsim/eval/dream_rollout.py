"""Drive a dream with an agent or a list of actions, optionally beside the real game.

With a real env (``--compare``), both start from the same real first frame (the dream is reset
with the real env's first observation as its context) and receive the same actions, chosen by the
agent from the real observations: the two videos differ only where the model is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent


@dataclass
class DreamRollout:
    """Observations ``uint8[H, W, C]`` per step (the first is the start), actions, rewards and ends."""

    dream_frames: list[np.ndarray] = field(default_factory=list)
    real_frames: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    dream_rewards: list[float] = field(default_factory=list)
    real_rewards: list[float] = field(default_factory=list)
    dream_end: int | None = None  # step at which the dream terminated, if it did
    real_end: int | None = None


def dream_rollout(
    dream: gym.Env,
    *,
    agent: Agent | None = None,
    actions: Sequence[int] | None = None,
    steps: int = 300,
    seed: int = 0,
    real: gym.Env | None = None,
) -> DreamRollout:
    """Up to ``steps`` steps of ``dream`` driven by ``agent`` or by ``actions`` (one per step).

    Stops when the env that the agent watches (the real one when comparing) terminates or is
    truncated; with an action list, when the list ends.
    """
    if (agent is None) == (actions is None):
        raise ValueError("pass an agent or a list of actions")
    result = DreamRollout()
    if real is not None:
        observation, info = real.reset(seed=seed)
        result.real_frames.append(observation)
        dream_observation, _ = dream.reset(
            seed=seed,
            options={
                "frames": observation[None],
                "actions": np.zeros(1, np.int64),
                "x_pos": float(info.get("x_pos", 0)),
            },
        )
    else:
        dream_observation, info = dream.reset(seed=seed)
        observation = dream_observation
    result.dream_frames.append(dream_observation)
    if agent is not None:
        agent.reset(seed=seed)
    total = steps if actions is None else min(steps, len(actions))
    for t in range(total):
        action = int(agent.act(observation, info)) if agent is not None else int(actions[t])
        result.actions.append(action)
        dream_observation, reward, terminated, truncated, dream_info = dream.step(action)
        result.dream_frames.append(dream_observation)
        result.dream_rewards.append(float(reward))
        if terminated and result.dream_end is None:
            result.dream_end = t + 1
        if real is not None:
            observation, real_reward, real_terminated, real_truncated, info = real.step(action)
            result.real_frames.append(observation)
            result.real_rewards.append(float(real_reward))
            if real_terminated:
                result.real_end = t + 1
            if real_terminated or real_truncated:
                break
        else:
            observation, info = dream_observation, dream_info
            if terminated or truncated:
                break
    return result
