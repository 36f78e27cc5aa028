"""A room of coloured boxes seen in first person (Farama's MiniWorld), for world models that must remember.

MiniWorld's ``PutNext`` room: textured walls, a checkered floor and six boxes, one of each colour,
placed at random by the reset seed. The agent turns and walks; what leaves its 60-degree field of
view is out of sight until it looks that way again. That is the test of a dream's memory: turn away
and back, and the room must be the same room (the boxes where they were). A frame stack of the
last 4 views cannot know what it turned away from; a dream that remembers can.

Actions (``Discrete(4)``, MiniWorld's first four): 0 turn left, 1 turn right (15 degrees, exact:
no domain randomisation), 2 move forward, 3 move back (0.15 of a metre). Nothing ends an episode
but MiniWorld's step limit (250: truncation); every reward is 0.

Observation: ``uint8[height, width, 3]`` rendered at that size (default 64x64). ``info``:
``ROOM_INFO_KEYS``, the agent's pose: ``agent_x``, ``agent_z`` (metres) and ``heading`` (degrees,
``[0, 360)``, counter-clockwise seen from above).

MiniWorld renders with pyglet's OpenGL. Here it runs headless (EGL); its wheel pins pyglet >= 1.5.27,
which nes-py (Mario's emulator) forbids (<= 1.5.21), so it is installed without its dependencies:
``pip install --no-deps miniworld==2.1.0``. pyglet 1.5.21 renders it; nes-py only imports pyglet
for its own window.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.errors import WorldsimError

ENV_NAME = "worldsim/MiniWorldRoom-v0"
ACTION_MEANINGS = ["turn_left", "turn_right", "move_forward", "move_back"]
TURN_DEGREES = 15.0  # MiniWorld's turn step without domain randomisation
MAX_EPISODE_STEPS = 250  # PutNext's own limit
ROOM_INFO_KEYS: dict[str, type] = {"agent_x": np.float64, "agent_z": np.float64, "heading": np.float64}
INSTALL_HINT = "pip install --no-deps miniworld==2.1.0 (its pyglet pin conflicts with nes-py's; pyglet 1.5.21 renders it)"


def import_headless(module: str, env_name: str):
    """A MiniWorld module, imported with pyglet set headless first (offscreen EGL rendering: no
    display needed, or present, on servers); a missing MiniWorld is one error naming ``env_name``
    and how to install it."""
    try:
        import pyglet
    except ImportError as error:
        raise WorldsimError(f"{env_name} needs pyglet and MiniWorld: {INSTALL_HINT}") from error
    pyglet.options["headless"] = True
    # Headless EGL without a GPU renders with Mesa's llvmpipe, which loads libLLVM; triton's own LLVM
    # (libtriton), loaded after that, segfaults the process. triton comes with torch's CUDA build and
    # is loaded by ``import diffusers`` (through peft): making the explorer after a MiniWorld env crashed.
    # Loaded first, the two live side by side.
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise WorldsimError(f"{env_name} needs MiniWorld: {INSTALL_HINT}") from error


class MiniWorldRoomEnv(gym.Env):
    """MiniWorld's six-box room in first person, with only the moves (see the module docstring).

    Args:
        size: ``(height, width)`` of the rendered observation.
        room_size: the room's side in metres (MiniWorld's ``size``); 8 keeps the boxes a few pixels
            wide at 64x64 from anywhere in the room.
        render_mode: ``"rgb_array"`` returns the observation upscaled by ``render_scale``.
    """

    # rgb_array only: MiniWorld renders headless here, and a pygame window beside its EGL context fails
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: tuple[int, int] = (64, 64), room_size: int = 8, render_mode: str | None = None, render_scale: int = 4):
        check_render_mode(render_mode, self.metadata["render_modes"])
        if int(room_size) < 4:
            raise WorldsimError(f"room_size is the room's side in metres and must be >= 4 (six boxes must fit), got {room_size}")
        height, width = (int(size[0]), int(size[1]))
        put_next = import_headless("miniworld.envs.putnext", ENV_NAME).PutNext
        self._room = put_next(size=int(room_size), obs_width=width, obs_height=height)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTION_MEANINGS))
        self._observation = np.zeros(self.observation_space.shape, np.uint8)
        self._renderer = FrameRenderer(render_mode, int(render_scale), "worldsim: MiniWorld room (real)", self.metadata["render_fps"])

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        # MiniWorld draws the room from its own generator: seed it from ours, so the same seed gives the same room.
        observation, _ = self._room.reset(seed=int(self.np_random.integers(2**31)))
        self._observation = observation
        return observation.copy(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in [0, {self.action_space.n})")
        # MiniWorld's actions 0-3 are these. PutNext's task (its reward and termination when the red box
        # stands next to the yellow one) needs boxes moved, which these actions cannot; only a room
        # generated with the two side by side would end it, at once. The room is the scene here, not the task.
        observation, _, _, truncated, _ = self._room.step(int(action))
        self._observation = observation
        return observation.copy(), 0.0, False, bool(truncated), self._info()

    def render(self):
        return self._renderer.render(self._observation)

    def close(self):
        self._renderer.close()
        self._room.close()

    def _info(self) -> dict[str, Any]:
        agent = self._room.agent
        heading = math.degrees(agent.dir) % 360.0
        values = {"agent_x": float(agent.pos[0]), "agent_z": float(agent.pos[2]), "heading": heading}
        return {key: dtype(values[key]) for key, dtype in ROOM_INFO_KEYS.items()}
