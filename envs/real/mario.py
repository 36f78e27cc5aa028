"""Super Mario Bros through gym-super-mario-bros, preprocessed exactly as the dream env sees it.

``MarioEnv`` owns the NES emulator and applies worldsim's preprocessing itself, so that the
observation, action space and ``info`` keys are one explicit contract shared with the dream
env (``worldsim/Mario-v0``):

* observation: ``Box(0, 255, (height, width, 3), uint8)``, default 64x64 RGB;
* action: ``Discrete(len(action_set))``, default SIMPLE_MOVEMENT (7 actions);
* one step = ``frame_skip`` emulator frames with the action held; the observation is the pixel-wise
  max of the last two frames (NES sprites flicker), resized with ``cv2.INTER_AREA``;
* reward: gym-super-mario-bros' reward summed over the skipped frames;
* ``info``: the numeric labels in ``MARIO_INFO_KEYS`` (x_pos, life, flag_get, is_dying, ...),
  always the same keys and dtypes, so they can be stored as dataset labels.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gym_super_mario_bros import SuperMarioBrosEnv
from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
from gymnasium import spaces
from nes_py.wrappers import JoypadSpace
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.errors import WorldsimError

ACTION_SETS: dict[str, list[list[str]]] = {
    "simple": SIMPLE_MOVEMENT,
    "right_only": RIGHT_ONLY,
    "complex": COMPLEX_MOVEMENT,
}

# The labels a world model learns from (progress, life loss, death, flag) and that agents may
# use as cues. Every step's info carries exactly these keys with these dtypes, so Minari can store
# them and the dream env can reproduce them.
MARIO_INFO_KEYS: dict[str, type] = {
    "x_pos": np.int64,  # horizontal position in the level, in pixels
    "y_pos": np.int64,  # height above the bottom of the screen, in pixels
    "life": np.int64,  # lives left (RAM value; drops by one on death)
    "flag_get": np.bool_,  # reached the flag (stage cleared)
    "is_dying": np.bool_,  # death animation started (fall or enemy)
    "is_dead": np.bool_,  # death finished
    "time": np.int64,  # in-game clock
    "coins": np.int64,
    "score": np.int64,
    "powerup": np.int64,  # 0 small, 1 tall, 2 fire
    "world": np.int64,
    "stage": np.int64,
    "camera_x": np.int64,  # the screen's left edge in the level, in pixels: x_pos minus Mario's screen x (RAM)
}

NES_FPS = 60


def parse_level(level: str | tuple[int, int]) -> tuple[int, int]:
    """``"1-1"`` or ``(1, 1)`` -> ``(world, stage)``; raises WorldsimError naming the bad value."""
    if isinstance(level, str):
        parts = level.split("-")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            level = (int(parts[0]), int(parts[1]))
    if not isinstance(level, tuple | list) or len(level) != 2 or not all(isinstance(v, int) and 1 <= v <= 8 for v in level) or level[1] > 4:
        raise WorldsimError(f"level {level!r} is not a Super Mario Bros level: use 'W-S' with W in 1..8, S in 1..4")
    return (level[0], level[1])


def resolve_action_set(action_set: str | list[list[str]]) -> list[list[str]]:
    if isinstance(action_set, str):
        if action_set not in ACTION_SETS:
            raise WorldsimError(f"unknown action set {action_set!r}: choose one of {sorted(ACTION_SETS)}")
        return ACTION_SETS[action_set]
    return [list(buttons) for buttons in action_set]


class MarioEnv(gym.Env):
    """Super Mario Bros (one level, one life) with worldsim's preprocessing.

    Args:
        level: ``"W-S"``, the level to play; the episode ends on death or at the flag.
        action_set: ``"simple"`` (7 actions), ``"right_only"`` (5), ``"complex"`` (12), or a list
            of button combinations such as ``[["right"], ["right", "A"]]``.
        frame_skip: emulator frames per step (the action is held; reward is summed).
        size: ``(height, width)`` of the observation.
        render_mode: ``"rgb_array"`` returns the observation upscaled by ``render_scale``
            (nearest neighbour, as the dream renders); ``"human"`` shows it in a pygame window.
        noop_max: if > 0, each reset waits a random 0..noop_max frames (drawn from the reset seed)
            so that episodes of a deterministic agent differ.

    Observation: ``uint8[height, width, 3]``. Action: ``int`` in ``[0, len(action_set))``.
    ``info``: ``MARIO_INFO_KEYS`` with numpy scalars.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": NES_FPS // 4}

    def __init__(
        self,
        level: str = "1-1",
        action_set: str | list[list[str]] = "simple",
        frame_skip: int = 4,
        size: tuple[int, int] = (64, 64),
        render_mode: str | None = None,
        render_scale: int = 4,
        noop_max: int = 0,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        if int(frame_skip) < 2:
            raise WorldsimError(f"frame_skip must be >= 2 (max-pooling needs two frames), got {frame_skip}")
        self.level = parse_level(level)
        self.action_set = resolve_action_set(action_set)
        self.frame_skip = int(frame_skip)
        self.size = (int(size[0]), int(size[1]))
        self.render_mode = render_mode
        self.render_scale = int(render_scale)
        self.noop_max = int(noop_max)
        self.metadata = {**self.metadata, "render_fps": NES_FPS // self.frame_skip}

        self._nes = JoypadSpace(SuperMarioBrosEnv(target=self.level), self.action_set)
        self.observation_space = spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self.action_space = spaces.Discrete(len(self.action_set))
        self._observation = np.zeros(self.observation_space.shape, np.uint8)
        self._renderer = FrameRenderer(render_mode, self.render_scale, "worldsim: Super Mario Bros (real)", self.metadata["render_fps"])
        self._closed = False

    def get_action_meanings(self) -> list[str]:
        return ["+".join(buttons) for buttons in self.action_set]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        frame, raw_info = self._nes.reset()
        for _ in range(int(self.np_random.integers(0, self.noop_max + 1)) if self.noop_max else 0):
            frame, _, terminated, truncated, raw_info = self._nes.step(0)
            if terminated or truncated:  # cannot happen in the first frames, but never step a finished game
                frame, raw_info = self._nes.reset()
                break
        self._observation = self._preprocess(frame, frame)
        if self.render_mode == "human":
            self.render()
        return self._observation.copy(), self._labels(raw_info)

    def step(self, action):
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in [0, {self.action_space.n})")
        # Written by hand rather than with gymnasium's MaxAndSkipObservation: that wrapper max-pools
        # buffers it only fills at fixed skip indices, so an episode ending mid-skip (a death) returns
        # stale frames from the previous step. Here the pool is always over the last two frames seen.
        previous = current = None
        reward = 0.0
        terminated = truncated = False
        raw_info: dict[str, Any] = {}
        for _ in range(self.frame_skip):
            frame, r, terminated, truncated, raw_info = self._nes.step(int(action))
            previous, current = current, frame
            reward += float(r)
            if terminated or truncated:
                break
        self._observation = self._preprocess(previous if previous is not None else current, current)
        if self.render_mode == "human":
            self.render()
        return self._observation.copy(), reward, bool(terminated), bool(truncated), self._labels(raw_info)

    def render(self):
        return self._renderer.render(self._observation)

    def close(self):
        self._renderer.close()
        if not self._closed:  # nes-py raises on a second close; Gymnasium allows it
            self._nes.close()
            self._closed = True

    def _preprocess(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        pooled = np.maximum(previous, current)
        height, width = self.size
        if pooled.shape[:2] == (height, width):
            return pooled.copy()
        return cv2.resize(pooled, (width, height), interpolation=cv2.INTER_AREA)

    def _labels(self, raw_info: dict[str, Any]) -> dict[str, Any]:
        ram = self._nes.unwrapped.ram
        screen_x = (int(ram[0x86]) - int(ram[0x071C])) % 256  # Mario's x on screen (RAM 0x86: his x in the page)
        values = {**raw_info, "powerup": raw_info.get("powerup_level", 0), "camera_x": int(raw_info["x_pos"]) - screen_x}
        return {key: dtype(values[key]) for key, dtype in MARIO_INFO_KEYS.items()}
