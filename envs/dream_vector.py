"""``gym.make_vec("worldsim/Mario-v0", num_envs=N)``: N dreams, one forward pass per step.

A ``SyncVectorEnv`` of N ``WorldModelEnv`` would run the denoiser N times per step at batch 1;
this env holds N dreams in one ``DreamEngine``, which is what makes large batches cheap per frame
on a CPU and necessary on a GPU. Reset options, info keys and errors are the single env's.

Autoreset follows Gymnasium's default (``AutoresetMode.NEXT_STEP``): the step after an episode
ends returns the first observation of the next episode, with reward 0 and no termination.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from worldsim.envs.dream import SHIPPED_CHECKPOINT, action_hint, build_engine, dream_spaces, joint_actions, reset_options
from worldsim.envs.rendering import check_render_mode, upscale
from worldsim.envs.vector_seeding import vector_np_random

from worldsim.errors import WorldsimError


class WorldModelVectorEnv(VectorEnv):
    """``num_envs`` dreams of one world model, stepped together.

    Observations ``uint8[N, 64, 64, 3]``, actions ``int[N]`` in ``Discrete(7)`` (for a game of several
    agents ``int[N, agents]``, the single env's ``MultiDiscrete`` batched); rewards, terminations
    and truncations ``[N]``; ``info`` holds the single env's keys as ``[N]`` arrays (with
    Gymnasium's ``_key`` masks). Arguments are those of ``WorldModelEnv`` plus ``num_envs`` and
    ``max_episode_steps``.

    ``reset(options={"frames": uint8[N, k, H, W, C], "actions": int[N, k]})`` (optionally
    ``"x_pos"``: N numbers) starts each dream from its own real context.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        sampling_steps: int | None = None,
        max_episode_steps: int | None = None,
        shipped: str = SHIPPED_CHECKPOINT,
        adapter: str | os.PathLike | None = None,
        adapter_scale: float = 1.0,
        adapter_sigma_max: float | None = None,
    ):
        if num_envs < 1:
            raise WorldsimError(f"num_envs must be >= 1, got {num_envs}")
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.engine = build_engine(
            checkpoint,
            device,
            sampling_steps,
            num_dreams=num_envs,
            shipped=shipped,
            adapter=adapter,
            adapter_scale=adapter_scale,
            adapter_sigma_max=adapter_sigma_max,
        )
        self.model, self.device, self.game = self.engine.model, self.engine.device, self.engine.game
        self.num_envs = num_envs
        self.context_length = self.engine.context_length
        self.single_observation_space, self.single_action_space = dream_spaces(self.model.config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self.render_scale = render_mode, render_scale
        self.max_episode_steps = max_episode_steps
        self._observations: np.ndarray | None = None
        self._elapsed = np.zeros(num_envs, np.int64)
        self._needs_reset = np.zeros(num_envs, np.bool_)
        self._np_random, self._np_random_seed = seeding.np_random()

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = vector_np_random(seed), seed
        self.engine.seed(self._np_random)
        context = reset_options(self.engine, options, num_dreams=self.num_envs) if options else None
        self.engine.reset(np.arange(self.num_envs), self._np_random, context)
        self._elapsed[:] = 0
        self._needs_reset[:] = False
        self._observations = self.engine.observations()
        return self._observations.copy(), _with_masks(self.engine.reset_info())

    def step(self, actions):
        if self._observations is None:
            raise WorldsimError("step() before reset(): call env.reset() first")
        actions = np.asarray(actions)
        if (
            actions.shape != self.action_space.shape
            or not np.issubdtype(actions.dtype, np.integer)
            or not self.action_space.contains(actions.astype(self.action_space.dtype))
        ):
            raise WorldsimError(
                f"actions {actions.tolist()} do not fit {self.action_space}: one action per dream, {self.num_envs} in all; "
                f"for each, {action_hint(self.single_action_space)}"
            )
        result = self.engine.step(joint_actions(self.game, actions))
        observations, rewards, terminated, info = result.observations, result.rewards, result.terminated, result.info
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps if self.max_episode_steps is not None else np.zeros(self.num_envs, np.bool_)
        # Dreams that ended at the previous step restart now (NEXT_STEP autoreset).
        restart = np.flatnonzero(self._needs_reset)
        if len(restart):
            self.engine.reset(restart, self._np_random)
            observations[restart] = self.engine.observations(restart)
            for key, value in self.engine.reset_info(restart).items():
                info[key][restart] = value
            rewards[restart], terminated[restart], truncated[restart] = 0.0, False, False
            self._elapsed[restart] = 0
        self._needs_reset = terminated | truncated
        self._observations = observations
        return observations.copy(), rewards, terminated, truncated, _with_masks(info)

    def render(self):
        if self.render_mode is None or self._observations is None:
            return None
        return tuple(upscale(frame, self.render_scale) for frame in self._observations)

    def close_extras(self, **kwargs):
        pass


def _with_masks(info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gymnasium's vector info: every key present for every env, with its ``_key`` mask."""
    return info | {f"_{key}": np.ones(len(value), np.bool_) for key, value in info.items()}


__all__ = ["WorldModelVectorEnv"]
