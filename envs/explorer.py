"""``worldsim/Explorer-v0``: walk through a 360-degree world that the explorer model imagines (GenEx).

The observation is a panorama, ``uint8[H, W, 3]`` (64x128: ``worldsim/MiniWorldPanorama-v0``'s).
Actions are the real world's (``Discrete(3)``):

* 0 / 1, turn left / right: exact, no model: the panorama rolled by the checkpoint's
  ``turn_degrees`` (a whole number of columns; turning left brings what was on the left to the
  middle, so the panorama rolls right);
* 2, move forward: generated. The explorer imagines a walk of ``frames`` steps forward from the
  current panorama; moves forward play it out one panorama each, and a new walk is imagined from
  the last panorama when it is used up. A turn ends the walk (the next one goes another way).

``reset`` starts from a real panorama: one of the checkpoint's start bank (drawn with the reset
seed), or ``options={"panorama": uint8[H, W, 3]}``. Same seed, same panoramas: the sampler's noise
comes from the env's ``np_random``. Rewards are 0 and nothing ends an episode (the registration's
``max_episode_steps`` truncates it); ``info["walk_step"]`` counts the moves forward of the current
imagined walk (0 after a reset or a turn). ``ExplorerVectorEnv`` (``gym.make_vec``) steps N walks
over the same ``PanoramaEngine``, imagining every new walk of a step in one sampler call.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from worldsim.envs.rendering import FrameRenderer, check_render_mode, upscale
from worldsim.envs.vector_seeding import vector_np_random

from worldsim.core.checkpoint import shipped_checkpoint
from worldsim.engine import resolve_device
from worldsim.engine.panorama_engine import ACTION_MEANINGS, PanoramaEngine
from worldsim.errors import WorldsimError
from worldsim.models.panorama_explorer import load_explorer

SHIPPED_EXPLORER = "explorer-v0"  # trained by scripts/train_explorer.sh; its card is its README.md


def build_panorama_engine(checkpoint, device, sampling_steps: int, num_walks: int) -> PanoramaEngine:
    """The engine behind the explorer front-ends: ``checkpoint=None`` is the shipped explorer."""
    device = resolve_device(device)
    model, start_panoramas = load_explorer(checkpoint if checkpoint is not None else shipped_checkpoint(SHIPPED_EXPLORER), device)
    return PanoramaEngine(model, start_panoramas, num_walks, device, sampling_steps)


class ExplorerEnv(gym.Env):
    """A panorama world imagined by an explorer checkpoint (see the module docstring).

    Args:
        checkpoint: an explorer folder (``worldsim train --model explorer`` writes ``OUT/model``); None:
            the explorer shipped in the package (``worldsim/checkpoints/explorer-v0``).
        sampling_steps: Euler steps per imagined walk. 4 by default: on held-out walks the shipped
            explorer scores higher at 4 than at 12 (PSNR and SSIM), and runs 4.7x faster (BENCHMARKS.md).
        device: torch device; None: CUDA when available, else the CPU.
        render_mode: ``"rgb_array"`` returns the panorama upscaled by ``render_scale``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        sampling_steps: int = 4,
        device: str | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.engine = build_panorama_engine(checkpoint, device, sampling_steps, num_walks=1)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, self.engine.shape, np.uint8)
        self.action_space = spaces.Discrete(len(ACTION_MEANINGS))
        self._renderer = FrameRenderer(render_mode, int(render_scale), "worldsim: imagined panorama world", self.metadata["render_fps"])

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.engine.seed(self.np_random)
        panorama = (options or {}).get("panorama")
        self.engine.reset(np.zeros(1, np.int64), self.np_random, None if panorama is None else np.asarray(panorama)[None])
        return self.engine.panoramas[0].copy(), {"walk_step": 0}

    def step(self, action):
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in [0, {self.action_space.n})")
        panorama = self.engine.step(np.array([action]))[0]
        return panorama, 0.0, False, False, {"walk_step": int(self.engine.walk_step[0])}

    def render(self):
        return self._renderer.render(self.engine.panoramas[0])

    def close(self):
        self._renderer.close()


class ExplorerVectorEnv(VectorEnv):
    """``num_envs`` imagined walks stepped together: observations ``uint8[N, H, W, 3]``, actions
    ``int[N]``; ``reset(options={"panorama": uint8[N, H, W, 3]})`` gives each its own start.
    ``max_episode_steps`` truncates (Gymnasium's next-step autoreset)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: str | os.PathLike | None = None,
        sampling_steps: int = 4,
        device: str | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        max_episode_steps: int | None = None,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.engine = build_panorama_engine(checkpoint, device, sampling_steps, num_walks=num_envs)
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(0, 255, self.engine.shape, np.uint8)
        self.single_action_space = spaces.Discrete(len(ACTION_MEANINGS))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode, self.render_scale, self.max_episode_steps = render_mode, render_scale, max_episode_steps
        self._elapsed = np.zeros(num_envs, np.int64)
        self._needs_reset = np.zeros(num_envs, np.bool_)
        self._started = False
        self._np_random, self._np_random_seed = seeding.np_random()

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = vector_np_random(seed), seed
        self.engine.seed(self._np_random)
        panoramas = (options or {}).get("panorama")
        self.engine.reset(np.arange(self.num_envs), self._np_random, None if panoramas is None else np.asarray(panoramas))
        self._elapsed[:], self._needs_reset[:], self._started = 0, False, True
        return self.engine.panoramas.copy(), _walk_info(np.zeros(self.num_envs, np.int64))

    def step(self, actions):
        if not self._started:
            raise WorldsimError("step() before reset(): call env.reset() first")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not self.action_space.contains(actions.astype(np.int64)):
            raise WorldsimError(
                f"actions {actions.tolist()} do not fit {self.action_space}: one int in [0, 3) per walk, {self.num_envs} in all"
            )
        observations = self.engine.step(actions)
        self._elapsed += 1
        rewards, terminated = np.zeros(self.num_envs), np.zeros(self.num_envs, np.bool_)
        truncated = self._elapsed >= self.max_episode_steps if self.max_episode_steps is not None else np.zeros(self.num_envs, np.bool_)
        restart = np.flatnonzero(self._needs_reset)  # walks truncated at the previous step restart now
        if len(restart):
            self.engine.reset(restart, self._np_random)
            observations[restart] = self.engine.panoramas[restart]
            self.engine.walk_step[restart], truncated[restart], self._elapsed[restart] = 0, False, 0
        self._needs_reset = truncated.copy()
        return observations, rewards, terminated, truncated, _walk_info(self.engine.walk_step.copy())

    def render(self):
        if self.render_mode is None or not self._started:
            return None
        return tuple(upscale(panorama, self.render_scale) for panorama in self.engine.panoramas)

    def close_extras(self, **kwargs):
        pass


def _walk_info(walk_step: np.ndarray) -> dict[str, np.ndarray]:
    return {"walk_step": walk_step, "_walk_step": np.ones(len(walk_step), np.bool_)}
