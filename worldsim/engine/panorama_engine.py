"""``PanoramaEngine``: N walks through worlds the explorer model imagines, stepped together.

The panorama front-ends (``worldsim/Explorer-v0`` and its vector twin) are thin layers over this
class, as the dream envs are over ``DreamEngine``. A walk's state is its panorama
``uint8[H, W, C]`` and the imagined panoramas still ahead of it (``walks``, ``uint8[N, F, H, W, C]``,
``ahead[i]`` of them left for walk ``i``). Actions are ``worldsim/MiniWorldPanorama-v0``'s:

* turn left / right: the panorama rolled by the turn's columns, exactly; the walk ahead is dropped;
* move forward: the next imagined panorama; walks with none left are imagined anew from their
  current panorama, all of them in one sampler call.
"""

from __future__ import annotations

import numpy as np
import torch

from worldsim.core.frames import from_uint8, to_uint8
from worldsim.diffusion.walk_sampler import WalkSampler, WalkSamplerConfig
from worldsim.errors import WorldsimError
from worldsim.models.panorama_explorer import PanoramaExplorer

TURN_LEFT, TURN_RIGHT, MOVE_FORWARD = 0, 1, 2
ACTION_MEANINGS = ["turn_left", "turn_right", "move_forward"]


class PanoramaEngine:
    """N walks of ``model``, started from ``start_panoramas uint8[M, H, W, C]`` or given panoramas."""

    def __init__(self, model: PanoramaExplorer, start_panoramas: np.ndarray, num_walks: int, device: torch.device, sampling_steps: int = 4):
        if num_walks < 1:
            raise WorldsimError(f"the number of walks must be >= 1, got {num_walks}")
        if int(sampling_steps) != sampling_steps or sampling_steps < 1:
            raise WorldsimError(f"sampling_steps must be an integer >= 1, got {sampling_steps!r}")
        config = model.config
        self.model, self.start_panoramas, self.num_walks, self.device = model, start_panoramas, num_walks, device
        self.sampler = WalkSampler(WalkSamplerConfig(num_steps=int(sampling_steps)), sigma_data=config.noise.sigma_data)
        self.turn_columns = round(config.image_width * config.turn_degrees / 360.0)
        self.shape = (config.image_height, config.image_width, config.image_channels)
        self.panoramas = np.zeros((num_walks, *self.shape), np.uint8)
        self.walks = np.zeros((num_walks, config.frames, *self.shape), np.uint8)
        self.ahead = np.zeros(num_walks, np.int64)  # imagined panoramas left in each walk
        self.walk_step = np.zeros(num_walks, np.int64)  # moves forward since the walk's start (0 after a reset or turn)
        self.generator = torch.Generator(device)

    def seed(self, rng: np.random.Generator) -> None:
        """Derive the sampler's noise from a front-end's ``np_random``: same seed, same walks."""
        self.generator.manual_seed(int(rng.integers(2**62)))

    def reset(self, indices: np.ndarray, rng: np.random.Generator, panoramas: np.ndarray | None = None) -> None:
        """Restart the walks at ``indices`` from ``panoramas uint8[n, H, W, C]`` or from the start bank (drawn with ``rng``)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if panoramas is None:
            panoramas = self.start_panoramas[rng.integers(len(self.start_panoramas), size=len(indices))]
        panoramas = np.asarray(panoramas)
        if panoramas.shape != (len(indices), *self.shape) or panoramas.dtype != np.uint8:
            raise WorldsimError(
                f"reset panoramas are {panoramas.dtype}{list(panoramas.shape)}; this explorer starts from uint8[{len(indices)}, {', '.join(map(str, self.shape))}]"
            )
        self.panoramas[indices] = panoramas
        self.ahead[indices] = 0
        self.walk_step[indices] = 0

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Advance every walk by its action (``int[N]``); returns the panoramas ``uint8[N, H, W, C]``."""
        actions = np.asarray(actions, np.int64).reshape(self.num_walks)
        turning = actions != MOVE_FORWARD
        # turning left brings the left of the view to the middle: the panorama rolls right
        for index in np.flatnonzero(turning):
            shift = self.turn_columns if actions[index] == TURN_LEFT else -self.turn_columns
            self.panoramas[index] = np.roll(self.panoramas[index], shift, axis=1)
        self.ahead[turning], self.walk_step[turning] = 0, 0
        forward = ~turning
        fresh = np.flatnonzero(forward & (self.ahead == 0))
        if len(fresh):
            self.walks[fresh] = self._imagine(self.panoramas[fresh])
            self.ahead[fresh], self.walk_step[fresh] = self.walks.shape[1], 0
        moving = np.flatnonzero(forward)
        self.panoramas[moving] = self.walks[moving, self.walks.shape[1] - self.ahead[moving]]
        self.ahead[moving] -= 1
        self.walk_step[moving] += 1
        return self.panoramas.copy()

    def _imagine(self, panoramas: np.ndarray) -> np.ndarray:
        condition = from_uint8(torch.from_numpy(panoramas).to(self.device))
        return to_uint8(self.sampler.sample(self.model, condition, generator=self.generator)).cpu().numpy()
