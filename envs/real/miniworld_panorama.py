"""MiniWorld's four rooms seen as a 360-degree panorama at the agent's position (GenEx's observation).

The world is MiniWorld's ``FourRooms``: four rooms joined by gaps, textured walls, and a red box
placed at random by the reset seed; reaching the box ends the episode with MiniWorld's reward.
The observation is not the agent's 60-degree view but the whole ring around it: four 90-degree
views (yaw = heading, +90, +180, +270) rendered at ``face x face`` and resampled onto a cylinder,
``uint8[height, width, 3]`` (default 64x128). Column ``u`` looks at azimuth
``180 - (u + 0.5) * 360 / width`` degrees counter-clockwise from the heading: the heading is the
middle column, what is behind the agent the two edges, left on the left. Rows span elevations
whose tangent is within ``+-0.7`` (about 35 degrees, what a 90-degree face covers at its edges).

Actions (``Discrete(3)``, GenEx's): 0 turn left, 1 turn right (by ``turn_degrees``: a whole number
of columns, so a turn is a roll of the panorama), 2 move forward (``forward_step`` metres).
``info``: the agent's pose (``agent_x``, ``agent_z``, ``heading`` in degrees) and ``box_x``,
``box_z`` (the red box, for agents that are told where it is and for measurement).

MiniWorld is installed apart (``pip install --no-deps miniworld==2.1.0``, see
``worldsim.envs.real.miniworld_room``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from worldsim.envs.real.miniworld_room import import_headless
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.errors import WorldsimError

ENV_NAME = "worldsim/MiniWorldPanorama-v0"
ACTION_MEANINGS = ["turn_left", "turn_right", "move_forward"]
MAX_EPISODE_STEPS = 250  # FourRooms' own limit
ELEVATION_TAN = 0.7  # rows span tan(elevation) in [-0.7, 0.7]: inside every 90-degree face, corners included
PANORAMA_INFO_KEYS: dict[str, type] = {
    "agent_x": np.float64,
    "agent_z": np.float64,
    "heading": np.float64,
    "box_x": np.float64,
    "box_z": np.float64,
}


def ring_to_cylinder_maps(face: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps from four ``face x face`` 90-degree views side by side (yaw = heading,
    +90, +180, +270 degrees counter-clockwise) to a ``height x width`` cylindrical panorama."""
    azimuth = np.radians(180.0 - (np.arange(width) + 0.5) * 360.0 / width)  # counter-clockwise from the heading
    elevation_tan = ELEVATION_TAN * (1.0 - 2.0 * (np.arange(height) + 0.5) / height)  # top row looks up
    view = np.round(azimuth / (np.pi / 2)).astype(int) % 4  # the face whose centre is nearest
    within = azimuth - view * (np.pi / 2)
    within = (within + np.pi) % (2 * np.pi) - np.pi  # the angle from that face's centre, in [-45, 45] degrees
    focal = face / 2.0  # a 90-degree field of view
    # view i sits at columns [i * face, (i + 1) * face) of the ring; looking left of its centre is left in it
    x = view * face + face / 2.0 - focal * np.tan(within) - 0.5
    y = face / 2.0 - focal * elevation_tan[:, None] / np.cos(within)[None, :] - 0.5
    return np.broadcast_to(x[None, :], (height, width)).astype(np.float32), y.astype(np.float32)


class MiniWorldPanoramaEnv(gym.Env):
    """FourRooms with a cylindrical panorama for observation (see the module docstring).

    Args:
        size: ``(height, width)`` of the panorama; ``width`` a multiple of ``360 / turn_degrees``.
        face: the side of each rendered 90-degree view.
        turn_degrees: one turn; ``forward_step``: one step forward, in metres.
        render_mode: ``"rgb_array"`` returns the panorama upscaled by ``render_scale``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        size: tuple[int, int] = (64, 128),
        face: int = 64,
        turn_degrees: float = 22.5,
        forward_step: float = 0.5,
        render_mode: str | None = None,
        render_scale: int = 4,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        height, width = int(size[0]), int(size[1])
        columns = width * turn_degrees / 360.0
        if turn_degrees <= 0 or abs(columns - round(columns)) > 1e-9:
            raise WorldsimError(
                f"a turn of {turn_degrees} degrees is {columns:.3f} columns of a {width}-wide panorama: "
                "pick a width and turn whose turn is a whole number of columns (e.g. 128 and 22.5)"
            )
        if forward_step <= 0:
            raise WorldsimError(f"forward_step is in metres and must be > 0, got {forward_step}")
        four_rooms = import_headless("miniworld.envs.fourrooms", ENV_NAME).FourRooms
        params = import_headless("miniworld.params", ENV_NAME).DEFAULT_PARAMS.no_random()
        params.set("turn_step", float(turn_degrees))
        params.set("forward_step", float(forward_step))
        self._world = four_rooms(obs_width=int(face), obs_height=int(face), params=params)
        self.turn_columns, self.face = round(columns), int(face)
        self._maps = ring_to_cylinder_maps(self.face, height, width)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTION_MEANINGS))
        self._observation = np.zeros(self.observation_space.shape, np.uint8)
        self._renderer = FrameRenderer(render_mode, int(render_scale), "worldsim: MiniWorld panorama (real)", self.metadata["render_fps"])

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._world.reset(seed=int(self.np_random.integers(2**31)))
        self._observation = self.panorama()
        return self._observation.copy(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in [0, {self.action_space.n})")
        _, reward, terminated, truncated, _ = self._world.step(int(action))  # MiniWorld's actions 0-2 are these
        self._observation = self.panorama()
        return self._observation.copy(), float(reward), bool(terminated), bool(truncated), self._info()

    def panorama(self) -> np.ndarray:
        """The ring of four 90-degree views at the agent's pose, resampled onto the cylinder."""
        agent = self._world.agent
        heading, fov = agent.dir, agent.cam_fov_y
        views = []
        try:
            agent.cam_fov_y = 90.0  # square faces: 90 degrees across as well as up
            for quarter in range(4):
                agent.dir = heading + quarter * math.pi / 2
                views.append(self._world.render_obs())
        finally:
            agent.dir, agent.cam_fov_y = heading, fov
        ring = np.concatenate(views, axis=1)
        return cv2.remap(ring, *self._maps, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def render(self):
        return self._renderer.render(self._observation)

    def close(self):
        self._renderer.close()
        self._world.close()

    def _info(self) -> dict[str, Any]:
        agent, box = self._world.agent, self._world.box
        values = {
            "agent_x": float(agent.pos[0]),
            "agent_z": float(agent.pos[2]),
            "heading": math.degrees(agent.dir) % 360.0,
            "box_x": float(box.pos[0]),
            "box_z": float(box.pos[2]),
        }
        return {key: dtype(values[key]) for key, dtype in PANORAMA_INFO_KEYS.items()}
