"""N dreams as a stable-baselines3 ``VecEnv``: SB3 agents train in the dream at batched speed.

SB3 does not take Gymnasium's ``VectorEnv``: its ``VecEnv`` resets an ended env within the same
step and hands the last observation over in ``info["terminal_observation"]`` (Gymnasium's vector
env returns it, then resets on the next step). This front-end gives SB3 exactly its own contract,
over the same ``DreamEngine`` as the single and vector Gymnasium envs: one forward pass per step for
all N dreams, the same reset bank, the same info keys, ``max_episode_steps`` as a time limit
(reported as ``info["TimeLimit.truncated"]``, as SB3's own wrappers do).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv
from worldsim.envs.dream import build_engine, dream_spaces

from worldsim.errors import WorldsimError


class DreamSB3VecEnv(VecEnv):
    """``num_envs`` dreams of a world model (default: the shipped Mario model) for SB3.

    Observations ``uint8[N, 64, 64, 3]``; actions ``int[N]``; rewards ``float32[N]``; ``dones``
    ``bool[N]``; ``infos``: one dict per dream with the dream env's keys.
    """

    def __init__(
        self,
        num_envs: int = 8,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        sampling_steps: int | None = None,
        max_episode_steps: int | None = 1000,
        seed: int | None = None,
    ):
        if num_envs < 1:
            raise WorldsimError(f"num_envs must be >= 1, got {num_envs}")
        self.engine = build_engine(checkpoint, device, sampling_steps, num_dreams=num_envs)
        observation_space, action_space = dream_spaces(self.engine.model.config)
        self.render_mode = None  # SB3 asks every VecEnv for it
        super().__init__(num_envs, observation_space, action_space)
        self.max_episode_steps = max_episode_steps
        self._rng = np.random.default_rng(seed)
        self._elapsed = np.zeros(num_envs, np.int64)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if any(s is not None for s in self._seeds) else None
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_seeds()
        self.engine.seed(self._rng)
        self.engine.reset(np.arange(self.num_envs), self._rng)
        self._elapsed[:] = 0
        return self.engine.observations()

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions).reshape(-1)
        if (
            actions.shape != (self.num_envs,)
            or not np.issubdtype(actions.dtype, np.integer)
            or actions.min() < 0
            or actions.max() >= self.action_space.n
        ):
            raise WorldsimError(f"actions {actions.tolist()} do not fit: pass {self.num_envs} ints in 0..{self.action_space.n - 1}")
        self._actions = actions

    def step_wait(self):
        result = self.engine.step(self._actions)
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps if self.max_episode_steps else np.zeros(self.num_envs, bool)
        dones = result.terminated | truncated
        observations = result.observations
        infos: list[dict[str, Any]] = [{key: value[i] for key, value in result.info.items()} for i in range(self.num_envs)]
        ended = np.flatnonzero(dones)
        for i in ended:
            infos[i]["terminal_observation"] = observations[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not result.terminated[i])
        if len(ended):
            self.engine.reset(ended, self._rng)
            observations[ended] = self.engine.observations(ended)
            self._elapsed[ended] = 0
        return observations, result.rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
