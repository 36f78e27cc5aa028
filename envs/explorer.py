"""``worldsim/Explorer-v0``: walk through a 360-degree world that the explorer model imagines (GenEx).

The observation is a panorama, ``uint8[H, W, 3]`` (64x128: ``worldsim/MiniWorldPanorama-v0``'s).
Actions are the real world's (``Discrete(3)``):

* 0 / 1, turn left / right: exact, no model: the panorama rolled by ``turn_degrees`` (a whole
  number of columns; turning left brings what was on the left to the middle, so the panorama rolls
  right);
* 2, move forward: generated. The explorer imagines a walk of ``frames`` steps forward from the
  current panorama; moves forward play it out one panorama each, and a new walk is imagined from
  the last panorama when it is used up. A turn ends the walk (the next one goes another way).

``reset`` starts from a real panorama: one of the checkpoint's start bank (drawn with the reset
seed), or ``options={"panorama": uint8[H, W, 3]}``. Same seed, same panoramas: the sampler's noise
comes from the env's ``np_random``. Rewards are 0 and nothing ends an episode (the registration's
``max_episode_steps`` truncates it); ``info`` has ``walk_step``, the step within the current
imagined walk (0 after a reset or a turn).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.core.frames import from_uint8, to_uint8
from worldsim.diffusion.walk_sampler import WalkSampler, WalkSamplerConfig
from worldsim.engine import resolve_device
from worldsim.errors import WorldsimError
from worldsim.models.panorama_explorer import load_explorer

TURN_LEFT, TURN_RIGHT, MOVE_FORWARD = 0, 1, 2


class ExplorerEnv(gym.Env):
    """A panorama world imagined by an explorer checkpoint (see the module docstring).

    Args:
        checkpoint: an explorer folder (``worldsim train --model explorer`` writes ``OUT/model``).
        sampling_steps: Euler steps per imagined walk.
        device: torch device; None: CUDA when available, else the CPU.
        render_mode: ``"rgb_array"`` returns the panorama upscaled by ``render_scale``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        sampling_steps: int = 12,
        device: str | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        if checkpoint is None:
            raise WorldsimError(
                "worldsim/Explorer-v0 needs checkpoint=PATH: no explorer is shipped yet; train one with "
                "`worldsim train --model explorer --train explorer-spatial --out runs/explorer-spatial`, then its temporal stage"
            )
        if int(sampling_steps) != sampling_steps or sampling_steps < 1:
            raise WorldsimError(f"sampling_steps must be an integer >= 1, got {sampling_steps!r}")
        self.device = resolve_device(device)
        self.model, self.start_panoramas = load_explorer(checkpoint, self.device)
        config = self.model.config
        self.sampler = WalkSampler(WalkSamplerConfig(num_steps=int(sampling_steps)), sigma_data=config.noise.sigma_data)
        self.turn_columns = round(config.image_width * config.turn_degrees / 360.0)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (config.image_height, config.image_width, config.image_channels), np.uint8)
        self.action_space = spaces.Discrete(3)
        self._panorama = np.zeros(self.observation_space.shape, np.uint8)
        self._walk: list[np.ndarray] = []  # imagined panoramas still ahead, nearest first
        self._walk_step = 0
        self._generator = torch.Generator(self.device)
        self._renderer = FrameRenderer(render_mode, int(render_scale), "worldsim: imagined panorama world", self.metadata["render_fps"])

    def get_action_meanings(self) -> list[str]:
        return ["turn_left", "turn_right", "move_forward"]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._generator.manual_seed(int(self.np_random.integers(2**62)))
        panorama = (options or {}).get("panorama")
        if panorama is None:
            panorama = self.start_panoramas[int(self.np_random.integers(len(self.start_panoramas)))]
        panorama = np.asarray(panorama)
        if panorama.shape != self.observation_space.shape or panorama.dtype != np.uint8:
            raise WorldsimError(
                f"options['panorama'] is {panorama.dtype}{list(panorama.shape)}; this explorer starts from uint8{list(self.observation_space.shape)}"
            )
        self._panorama, self._walk, self._walk_step = panorama.copy(), [], 0
        return self._panorama.copy(), {"walk_step": 0}

    def step(self, action):
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in [0, 3)")
        if action == MOVE_FORWARD:
            if not self._walk:
                self._walk = list(self._imagine_walk())
                self._walk_step = 0
            self._panorama = self._walk.pop(0)
            self._walk_step += 1
        else:
            # turning left brings the left of the view to the middle: the panorama rolls right
            shift = self.turn_columns if action == TURN_LEFT else -self.turn_columns
            self._panorama = np.roll(self._panorama, shift, axis=1)
            self._walk, self._walk_step = [], 0
        return self._panorama.copy(), 0.0, False, False, {"walk_step": self._walk_step}

    def _imagine_walk(self) -> np.ndarray:
        panorama = from_uint8(torch.from_numpy(self._panorama).to(self.device))[None]
        clip = self.sampler.sample(self.model, panorama, generator=self._generator)
        return to_uint8(clip[0]).cpu().numpy()

    def render(self):
        return self._renderer.render(self._panorama)

    def close(self):
        self._renderer.close()
