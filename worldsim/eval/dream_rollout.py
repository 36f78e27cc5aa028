"""Drive a dream with an agent or a list of actions, optionally beside the real game.

With a real env (``--compare``), both start from the same real first frame (the dream is reset
with the real env's first observation as its context) and receive the same actions, chosen by the
agent from the real observations: the two videos differ only where the model is wrong.

``run_dream`` is ``worldsim dream``: the dream (and the real game) built, the agent from its config,
the rollout, and the video (real on the left, dream on the right).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from worldsim.agents import Agent
from worldsim.envs.rendering import upscale
from worldsim.errors import WorldsimError


@dataclass
class DreamRollout:
    """Observations ``uint8[H, W, C]`` per step (the first is the start), actions, rewards and ends."""

    dream_frames: list[np.ndarray] = field(default_factory=list)
    real_frames: list[np.ndarray] = field(default_factory=list)
    actions: list = field(default_factory=list)  # int, or int64[agents] for a game of several agents
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
    """Up to ``steps`` steps of ``dream`` driven by ``agent`` or by ``actions`` (one per step): an
    ``int`` for a ``Discrete`` game, one ``int`` per agent for a ``MultiDiscrete`` one.

    Stops when the env that the agent watches (the real one when comparing) terminates or is
    truncated; with an action list, when the list ends.
    """
    if (agent is None) == (actions is None):
        raise ValueError("pass an agent or a list of actions")
    result = DreamRollout()
    if real is not None:
        observation, info = real.reset(seed=seed)
        result.real_frames.append(observation)
        # The first frame's action is "nothing" (0), one per agent in a game of several.
        options = {"frames": observation[None], "actions": np.zeros((1, *dream.action_space.shape), np.int64)}
        label = dream.unwrapped.engine.game.progress_label  # Mario's x_pos: the dream counts on from the real start
        if label:
            options[label] = float(info.get(label, 0))
        dream_observation, _ = dream.reset(seed=seed, options=options)
    else:
        dream_observation, info = dream.reset(seed=seed)
        observation = dream_observation
    result.dream_frames.append(dream_observation)
    if agent is not None:
        agent.reset(seed=seed)
    total = steps if actions is None else min(steps, len(actions))
    for t in range(total):
        action = _action(agent.act(observation, info) if agent is not None else actions[t], dream.action_space)
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


def _action(action, space: gym.Space):
    """``action`` as the dream's action space takes it: an ``int``, or ``int64[agents]``."""
    return int(action) if isinstance(space, gym.spaces.Discrete) else np.asarray(action, np.int64)


def side_by_side(left: np.ndarray, right: np.ndarray, scale: int, gap: int = 2) -> np.ndarray:
    """Two ``uint8[H, W, 3]`` frames upscaled ``scale`` times, side by side, ``gap`` white pixels between."""
    white = np.full((left.shape[0] * scale, gap * scale, left.shape[2]), 255, np.uint8)
    return np.concatenate([upscale(left, scale), white, upscale(right, scale)], axis=1)


def video_frames(result: DreamRollout, scale: int) -> list[np.ndarray]:
    """The rollout's frames for a video: the dream alone, or real (left) beside dream (right)."""
    if result.real_frames:
        return [side_by_side(real, dream, scale) for real, dream in zip(result.real_frames, result.dream_frames, strict=False)]
    return [upscale(frame, scale) for frame in result.dream_frames]


def real_game_env(game) -> gym.Env:
    """The real game a model learned: its game description's (``worldsim.core.game``) ``real_env``."""
    env_id, kwargs = game.real_env.get("id"), dict(game.real_env.get("kwargs") or {})
    if not env_id:
        raise WorldsimError(f"the model's game ({game.name}) names no real env (model.game.real_env)")
    if "size" in kwargs:
        kwargs["size"] = tuple(kwargs["size"])
    return gym.make(env_id, **kwargs)


def run_dream(
    *,
    agent_spec: str = "scripted",
    actions: Sequence[int] | None = None,
    steps: int = 300,
    seed: int = 0,
    compare: bool = False,
    video: str | os.PathLike | None = None,
    scale: int = 4,
    checkpoint: str | os.PathLike | None = None,
    device: str | None = None,
    sampling_steps: int | None = None,
    overrides: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> DreamRollout:
    """``worldsim dream``: up to ``steps`` steps of the dream driven by an agent (built from its
    config with ``overrides``) or by ``actions``; with ``compare``, the real game under the same
    actions; a summary to ``log`` and, with ``video``, the frames written upscaled ``scale`` times."""
    from worldsim.envs.dream import make_dream_env
    from worldsim.eval.agent_configs import build_agents, single_agent, split_overrides
    from worldsim.video import check_video_path, count_video_frames, write_video

    if steps <= 0:
        raise WorldsimError(f"--steps must be positive, got {steps}")
    overrides = list(overrides or [])
    video = check_video_path(video) if video else None
    dream = make_dream_env(checkpoint, device, sampling_steps)
    real = real_game_env(dream.unwrapped.engine.game) if compare else None
    if actions is not None:
        if overrides:
            raise WorldsimError(f"overrides {overrides} configure an agent; --actions plays a fixed list")
        if not isinstance(dream.action_space, gym.spaces.Discrete):
            raise WorldsimError(
                f"--actions lists one action number per step; this model's game takes {dream.action_space} (one action per agent): use --agent"
            )
        n = dream.action_space.n
        if not actions or min(actions) < 0 or max(actions) >= n:
            raise WorldsimError(f"--actions must be numbers in 0..{n - 1}, got {','.join(map(str, actions))!r}")
        result = dream_rollout(dream, actions=actions, steps=steps, seed=seed, real=real)
    else:
        name = single_agent(agent_spec, "dream plays")
        env_overrides, agent_overrides = split_overrides(overrides, [name])
        if env_overrides:
            raise WorldsimError(f"overrides {env_overrides} change an env; use --checkpoint, --device and --sampling-steps for the dream")
        (share,) = build_agents([(name, 1.0)], agent_overrides, real if real is not None else dream, need_trained=True)
        result = dream_rollout(dream, agent=share.agent, steps=steps, seed=seed, real=real)
    ended = f", the dream ended at step {result.dream_end}" if result.dream_end else ""
    log(f"dreamed {len(result.actions)} steps, predicted return {sum(result.dream_rewards):.1f}{ended}")
    if real is not None:
        real_end = f", ended at step {result.real_end}" if result.real_end else ""
        log(f"real game under the same actions: return {sum(result.real_rewards):.1f}{real_end}")
        real.close()
    if video:
        frames = video_frames(result, scale)
        write_video(frames, video, fps=15)
        held = count_video_frames(video)  # the encoder may drop the last frame: report what the file holds
        dropped = f" (the encoder dropped {len(frames) - held} of {len(frames)})" if held != len(frames) else ""
        log(f"wrote {held} frames to {video}{dropped}")
    dream.close()
    return result
