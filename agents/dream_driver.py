"""Behaviour agents driving the dreams of a dream env, and the per-dream history that rewards read.

An aligner fine-tunes the world model on the frames the dream is about to produce, so something
must play the dream: one behaviour agent per dream (scripted or random; each keeps its own episode
state), acting on that dream's observation and info. ``DreamDriver`` works with the single dream env
(``gym.make("worldsim/Mario-v0")``, a batch of one) and the vector env (``gym.make_vec``, N dreams
in one engine, Gymnasium's next-step autoreset), and keeps for each dream its last ``T`` frames and
actions (``T`` = the longest history a reward reads, at least the model's context), which the
engine does not (it holds K).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from worldsim.envs.dream import action_set

from worldsim.errors import WorldsimError


def dream_engine(env: gym.Env | gym.vector.VectorEnv):
    """The ``DreamEngine`` behind a dream env (single or vector); one error for any other env."""
    engine = getattr(env.unwrapped, "engine", None)
    if engine is None:
        raise WorldsimError(f"{type(env.unwrapped).__name__} is not a dream env: align on worldsim/Mario-v0 (gym.make or gym.make_vec)")
    return engine


class SingleDreamView:
    """What an agent built for one dream needs of a vector dream env: one dream's spaces and the
    game's buttons (``action_set``, which the scripted runner reads)."""

    def __init__(self, env: gym.vector.VectorEnv):
        self.action_space, self.observation_space = env.single_action_space, env.single_observation_space
        self.action_set = action_set(dream_engine(env).game)

    @property
    def unwrapped(self) -> SingleDreamView:
        return self


def behaviour_env(env: gym.Env | gym.vector.VectorEnv) -> gym.Env | SingleDreamView:
    """The env a behaviour agent is built with: the env itself, or one dream's view of a vector env."""
    return SingleDreamView(env) if isinstance(env, gym.vector.VectorEnv) else env


class DreamDriver:
    """One behaviour agent per dream of ``env``; ``actions()`` asks them, ``step(actions)`` plays them.

    ``history float[N, T, C, H, W]`` and ``history_actions int64[N, T]`` are each dream's last T frames
    and the actions that produced them (a fresh episode repeats its first frame, action 0, as the
    training windows pad an episode start).
    """

    def __init__(self, env, make_behaviour: Callable[[Any], Any], history_frames: int, seed: int | None = None):
        self.env, self.engine = env, dream_engine(env)
        self.vector = isinstance(env, gym.vector.VectorEnv)
        self.num_dreams = self.engine.num_dreams
        self.length = max(int(history_frames), self.engine.context_length)
        view = behaviour_env(env)
        self.agents = [make_behaviour(view) for _ in range(self.num_dreams)]
        for index, agent in enumerate(self.agents):
            agent.reset(None if seed is None else seed + index)
        self.history = torch.zeros((self.num_dreams, self.length, *self.engine.frames.shape[2:]), device=self.engine.device)
        self.history_actions = torch.zeros((self.num_dreams, self.length), dtype=torch.int64, device=self.engine.device)
        self.restart(seed)

    def restart(self, seed: int | None = None) -> None:
        """Reset every dream (from the env's real start contexts) and every behaviour agent."""
        observations, info = self.env.reset(seed=seed)
        self.observations = observations if self.vector else observations[None]
        self.infos = self._split(info)
        self._restart(np.arange(self.num_dreams))
        self._ended = np.zeros(self.num_dreams, np.bool_)
        self.steps = 0  # env steps since the last restart
        if seed is None:
            for agent in self.agents:
                agent.reset()

    def _split(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.vector:
            return [info]
        return [{key: value[i] for key, value in info.items() if not key.startswith("_")} for i in range(self.num_dreams)]

    def _restart(self, indices: np.ndarray) -> None:
        """The history of freshly reset dreams: their K context frames, padded with the first."""
        if len(indices) == 0:
            return
        index = torch.as_tensor(indices, device=self.engine.device)
        frames, actions = self.engine.frames[index].detach(), self.engine.actions[index]
        pad = self.length - frames.shape[1]
        self.history[index] = torch.cat([frames[:, :1].expand(-1, pad, -1, -1, -1), frames], dim=1)
        self.history_actions[index] = torch.cat([torch.zeros_like(actions[:, :1]).expand(-1, pad), actions], dim=1)

    def actions(self) -> np.ndarray:
        """Each dream's behaviour agent's action for its current observation, ``int64[N]``."""
        return np.array(
            [agent.act(obs, info) for agent, obs, info in zip(self.agents, self.observations, self.infos, strict=True)], np.int64
        )

    def context(self, actions: np.ndarray) -> dict[str, torch.Tensor]:
        """What the next step is generated from: ``frames float[N, K, C, H, W]`` and ``actions
        int64[N, K]`` (the last one the step's), plus the rewards' ``history``, ``history_actions``
        and the step's ``action int64[N]``."""
        action = torch.as_tensor(actions, dtype=torch.int64, device=self.engine.device)
        taken = torch.cat([self.engine.actions[:, 1:], action[:, None]], dim=1)
        return {
            "frames": self.engine.frames.detach(),
            "actions": taken,
            "history": self.history.clone(),
            "history_actions": self.history_actions.clone(),
            "action": action,
        }

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Play ``actions`` in every dream; returns ``float[N]`` rewards. Ended episodes restart
        (the vector env's next-step autoreset, or a reset of the single env) with their agent reset."""
        if self.vector:
            observations, rewards, terminated, truncated, info = self.env.step(actions)
            restarted = np.flatnonzero(self._ended)  # these dreams were reset by this step, not stepped
            self._ended = terminated | truncated
        else:
            observation, reward, terminated, truncated, info = self.env.step(int(actions[0]))
            observations, rewards = observation[None], np.array([reward])
            restarted = np.array([], np.int64)
            if terminated or truncated:
                observation, info = self.env.reset()
                observations, restarted = observation[None], np.array([0])
        stepped = np.setdiff1d(np.arange(self.num_dreams), restarted)
        index = torch.as_tensor(stepped, device=self.engine.device)
        self.history[index] = torch.cat([self.history[index, 1:], self.engine.frames[index, -1:].detach()], dim=1)
        self.history_actions[index] = torch.cat([self.history_actions[index, 1:], self.engine.actions[index, -1:]], dim=1)
        self._restart(restarted)
        for i in restarted:
            self.agents[i].reset()
        self.observations, self.infos = observations, self._split(info)
        self.steps += 1
        return np.asarray(rewards, np.float64)
