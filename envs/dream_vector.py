"""``gym.make_vec("worldsim/Mario-v0", num_envs=N)``: N dreams, one forward pass per step.

A ``SyncVectorEnv`` of N ``WorldModelEnv`` would run the denoiser N times per step at batch 1;
this env keeps the N contexts in one batch (``DreamBatch``), which is what makes large batches
cheap per frame on a CPU and necessary on a GPU.

Autoreset follows Gymnasium's default (``AutoresetMode.NEXT_STEP``): the step after an episode
ends returns the first observation of the next episode, with reward 0 and no termination.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from worldsim.envs.dream import (
    DreamBatch,
    WorldModelEnv,
    context_from_options,
    dream_spaces,
    load_dream,
)
from worldsim.envs.rendering import upscale

from worldsim.errors import WorldsimError


class WorldModelVectorEnv(VectorEnv):
    """``num_envs`` dreams of one world model, stepped together.

    Observations ``uint8[N, 64, 64, 3]``, actions ``int[N]`` in ``Discrete(7)``; rewards, terminations
    and truncations ``[N]``; ``info`` holds ``x_pos``, ``flag_get``, ``is_dying`` as ``[N]`` arrays.
    Arguments are those of ``WorldModelEnv`` plus ``num_envs`` and ``max_episode_steps``.

    ``reset(options={"frames": uint8[N, k, H, W, C], "actions": int[N, k]})`` starts each dream
    from its own real context.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 15,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        sampling_steps: int | None = None,
        max_episode_steps: int | None = None,
    ):
        if num_envs < 1:
            raise WorldsimError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode not in (None, "rgb_array"):
            raise WorldsimError(f"render_mode {render_mode!r} is not supported by the vector env: use 'rgb_array' or None")
        self.model, self.start_states, self.device = load_dream(checkpoint, device, sampling_steps)
        config = self.model.config
        self.num_envs = num_envs
        self.context_length = config.context_length
        self.single_observation_space, self.single_action_space = dream_spaces(config)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self.render_scale = render_mode, render_scale
        self.max_episode_steps = max_episode_steps
        self._dream = DreamBatch(self.model, self.start_states, num_envs, self.device)
        self._observations: np.ndarray | None = None
        self._elapsed = np.zeros(num_envs, np.int64)
        self._needs_reset = np.zeros(num_envs, np.bool_)
        self._np_random, self._np_random_seed = seeding.np_random()

    def reset(
        self,
        *,
        seed: int | list[int] | None = None,
        options: dict[str, Any] | None = None,
    ):
        if seed is not None:
            # One random stream drives all N dreams (they share one forward pass); a list of seeds
            # is folded into it.
            entropy = [int(s) for s in seed] if isinstance(seed, list | tuple) else int(seed)
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
            self._np_random_seed = seed
        self._dream.seed(self._np_random)
        if options:
            frames, actions = (
                np.asarray(options.get("frames")),
                np.asarray(options.get("actions")),
            )
            if frames.ndim != 5 or len(frames) != self.num_envs or actions.ndim != 2 or len(actions) != self.num_envs:
                raise WorldsimError(
                    f"vector reset options need frames uint8[{self.num_envs}, k, H, W, C] and actions int[{self.num_envs}, k], "
                    f"got {frames.dtype}{list(frames.shape)} and {actions.dtype}{list(actions.shape)}"
                )
            for i in range(self.num_envs):
                context = context_from_options(
                    {"frames": frames[i], "actions": actions[i]},
                    self.context_length,
                    self.single_observation_space.shape,
                    self.single_action_space.n,
                )
                self._dream.start(i, *context, x_pos=0.0)
        else:
            for i in range(self.num_envs):
                self._dream.start_from_bank(i, self._np_random)
        self._elapsed[:] = 0
        self._needs_reset[:] = False
        self._observations = self._dream.observation()
        return self._observations.copy(), {"x_pos": self._dream.x_pos.copy()}

    def step(self, actions):
        if self._observations is None:
            raise WorldsimError("step() before reset(): call env.reset() first")
        actions = np.asarray(actions)
        if (
            actions.shape != (self.num_envs,)
            or not np.issubdtype(actions.dtype, np.integer)
            or not self.action_space.contains(actions.astype(np.int64))
        ):
            raise WorldsimError(
                f"actions {actions.tolist()} do not fit {self.action_space}: pass {self.num_envs} ints in 0..{self.single_action_space.n - 1}"
            )
        observations, rewards, terminated, info = self._dream.step(actions)
        truncated = np.zeros(self.num_envs, np.bool_)
        self._elapsed += 1
        if self.max_episode_steps is not None:
            truncated = self._elapsed >= self.max_episode_steps
        # Dreams that ended at the previous step restart now (NEXT_STEP autoreset).
        for i in np.flatnonzero(self._needs_reset):
            self._dream.start_from_bank(i, self._np_random)
            observations[i] = self._dream.observation(i)
            rewards[i], terminated[i], truncated[i] = 0.0, False, False
            info["x_pos"][i] = self._dream.x_pos[i]
            self._elapsed[i] = 0
        self._needs_reset = terminated | truncated
        self._observations = observations
        info = {key: value for key, value in info.items()} | {f"_{key}": np.ones(self.num_envs, np.bool_) for key in info}
        return observations.copy(), rewards, terminated, truncated, info

    def render(self):
        if self.render_mode is None or self._observations is None:
            return None
        return tuple(upscale(frame, self.render_scale) for frame in self._observations)

    def close_extras(self, **kwargs):
        pass


__all__ = ["WorldModelEnv", "WorldModelVectorEnv"]
