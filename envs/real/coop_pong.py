"""Cooperative Pong (PettingZoo butterfly ``cooperative_pong_v6``), preprocessed for world models.

Two paddles keep one ball in play together: ``paddle_0`` on the left edge (a flat paddle) and
``paddle_1`` on the right edge (a four-tier "cake" by default). Each has ``Discrete(3)``:
0 do nothing, 1 move up, 2 move down. The ball starts from the centre in a random direction
(drawn from the reset seed); the game ends (terminates) when it leaves through the left or right
edge, and is truncated after ``max_cycles`` steps. Every step in play rewards each paddle
``max_reward / max_cycles``; the miss gives each ``off_screen_penalty``.

Two views of the same game, both with the observation the dream sees:

* ``CoopPongParallelEnv``: a PettingZoo ``ParallelEnv``, one observation per paddle (the whole
  screen, as in PettingZoo), per-paddle rewards and ends;
* ``CoopPongEnv``: a single-agent Gymnasium env over the joint action ``MultiDiscrete([3, 3])``,
  for Minari collection and for worldsim's agents (``worldsim/CoopPong-v0``).

Observation: the 480x280 screen resized with ``cv2.INTER_AREA`` to ``uint8[height, width, 3]``
(default 64x64); the game is black and white, so the three channels are equal.

The miss's frame (``hide_ball_out``, on by default): when the ball leaves the screen, the last
observation shows the field without it, where PettingZoo's screen still draws the ball, cut, at
the edge. At 64x64 that cut ball is two columns from where a bounce off the left paddle draws it,
inside the paddle's own column, and no model learnt to tell the two apart from it (BENCHMARKS.md);
a ball gone from the field is an end any model can see. ``info`` still gives its true position.

Positions in ``info`` are in the observation's pixel coordinates, continuous: pixel ``(row i,
column j)`` covers ``[j, j + 1) x [i, i + 1)``, so the screen spans ``[0, width) x [0, height)``
and a sprite's centre is the centroid of what it draws. They can fall outside the screen once the
ball has left it.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

# PettingZoo's game draws with pygame even when nothing is shown: without these, pygame would try
# to open a display and an audio device (and fail on a headless machine).
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import cv2
import gymnasium as gym
import numpy as np
import pygame
from gymnasium import spaces
from pettingzoo import ParallelEnv

# The game's own module: ``pettingzoo.butterfly.cooperative_pong_v6`` re-exports it with a
# DeprecationWarning (PettingZoo's versioned imports are deprecated); the version is checked below.
from pettingzoo.butterfly.cooperative_pong import cooperative_pong as pettingzoo_game
from worldsim.envs.rendering import check_render_mode

from worldsim.errors import WorldsimError

ENV_NAME = "worldsim/CoopPong-v0"
GAME_VERSION = "cooperative_pong_v6"  # the PettingZoo game whose rules and geometry this env (and the scripted agent) assume
AGENTS: tuple[str, str] = ("paddle_0", "paddle_1")  # left, right
ACTION_MEANINGS = ["NOOP", "UP", "DOWN"]
GAME_FPS = 15  # PettingZoo's render_fps for this game

# The game's own arguments and PettingZoo's defaults; any of them can be passed to both envs.
GAME_DEFAULTS: dict[str, Any] = {
    "ball_speed": 9,  # pixels of the 480x280 screen per step
    "left_paddle_speed": 12,
    "right_paddle_speed": 12,
    "cake_paddle": True,  # the right paddle is a four-tier cake (else a flat 20x100 paddle)
    "max_cycles": 900,  # truncation
    "bounce_randomness": False,  # a small random angle at each paddle bounce
    "max_reward": 100,  # per paddle over max_cycles steps in play
    "off_screen_penalty": -10,  # per paddle, on the miss
}

# What the joint env's info carries at reset and at every step, with these dtypes (Minari stores
# them as dataset labels, and needs the same keys and types throughout an episode).
COOP_PONG_INFO_KEYS: dict[str, type] = {
    "reward_paddle_0": np.float64,
    "reward_paddle_1": np.float64,
    "ball_out": np.bool_,  # the ball left the screen on this step (the episode's end)
    "ball_x": np.float64,  # the ball's centre, in observation pixels
    "ball_y": np.float64,
    "paddle_0_y": np.float64,  # each paddle's vertical centre, in observation pixels
    "paddle_1_y": np.float64,
    "rally_steps": np.int64,  # steps since reset
}
# What each paddle's info carries in the parallel env.
AGENT_INFO_KEYS: dict[str, type] = {
    "ball_x": np.float64,
    "ball_y": np.float64,
    "paddle_y": np.float64,  # this paddle's vertical centre
    "ball_out": np.bool_,
}


def _check_game_kwargs(game_kwargs: dict[str, Any]) -> None:
    unknown = sorted(set(game_kwargs) - set(GAME_DEFAULTS))
    if unknown:
        raise WorldsimError(f"unknown Cooperative Pong argument(s) {unknown}: use any of {sorted(GAME_DEFAULTS)}")


class CoopPongParallelEnv(ParallelEnv):
    """PettingZoo's Cooperative Pong with worldsim's observation, as a ``ParallelEnv``.

    Args:
        size: ``(height, width)`` of each paddle's observation.
        render_mode: ``"rgb_array"`` (``render()`` returns the observation) or ``None``.
        hide_ball_out: the miss's observation shows the field without the ball (see the module's
            docstring); False keeps PettingZoo's screen, the ball cut at the edge.
        **game_kwargs: the game's arguments, see ``GAME_DEFAULTS`` (``ball_speed``,
            ``cake_paddle``, ``max_cycles``, ``bounce_randomness``, ...).

    Per paddle: observation ``uint8[height, width, 3]`` (the whole screen), action ``int`` in
    ``{0, 1, 2}`` (nothing, up, down), reward ``float``; ``info``: ``AGENT_INFO_KEYS`` (the true
    ball and own-paddle positions in observation pixels, and whether the ball left the screen).
    ``reset(seed=s)`` makes the game (the ball's starting direction, bounce noise) repeatable.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "name": ENV_NAME,
        "is_parallelizable": True,
        "render_fps": GAME_FPS,
    }

    def __init__(self, size: tuple[int, int] = (64, 64), render_mode: str | None = None, hide_ball_out: bool = True, **game_kwargs: Any):
        check_render_mode(render_mode, self.metadata["render_modes"])
        _check_game_kwargs(game_kwargs)
        if pettingzoo_game.raw_env.metadata["name"] != GAME_VERSION:
            raise WorldsimError(
                f"this PettingZoo has {pettingzoo_game.raw_env.metadata['name']}, worldsim's Cooperative Pong is {GAME_VERSION}: "
                "install a PettingZoo release that has it (worldsim is tested with 1.27)"
            )
        if len(size) != 2 or min(int(size[0]), int(size[1])) < 8:
            raise WorldsimError(f"size must be (height, width) of at least 8x8 pixels, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.render_mode = render_mode
        self.hide_ball_out = bool(hide_ball_out)
        self.game_kwargs = {**GAME_DEFAULTS, **game_kwargs}
        # The game only draws its screen (which the observations are read from) in a render mode;
        # "rgb_array" draws off-screen, whatever this env's own render_mode is.
        self._game_env = pettingzoo_game.parallel_env(render_mode="rgb_array", **self.game_kwargs)
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        # One space object per paddle, returned as is on every call (PettingZoo's API test checks it);
        # separate action spaces, so that seeding one paddle's sampler leaves the other's alone.
        self.state_space = spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self.observation_spaces = {agent: self.state_space for agent in AGENTS}
        self.action_spaces = {agent: spaces.Discrete(len(ACTION_MEANINGS)) for agent in AGENTS}
        self._observation = np.zeros(self.state_space.shape, np.uint8)

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    @property
    def game(self):
        """PettingZoo's ``CooperativePong`` object (ball, paddles, screen); a seeded reset replaces it."""
        return self._game_env.unwrapped.env

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        screens, _ = self._game_env.reset(seed=seed, options=options)
        self.agents = list(self._game_env.agents)
        self._observation = self._resize(screens[AGENTS[0]])
        return self._per_agent_observations(), self._infos(ball_out=False)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise WorldsimError("the game is over (the ball went out or max_cycles was reached): call reset() before step()")
        for agent in self.agents:
            if agent not in actions or not self.action_spaces[agent].contains(actions[agent]):
                raise WorldsimError(f"actions {actions!r} must give each of {self.agents} an action in {{0, 1, 2}} (nothing, up, down)")
        screens, rewards, terminations, truncations, _ = self._game_env.step({agent: int(actions[agent]) for agent in self.agents})
        ball_out = bool(self.game.ball.is_out_of_bounds())
        if ball_out and self.hide_ball_out:
            self._observation = self._resize(self._field_without_ball())
        elif screens:
            self._observation = self._resize(screens[AGENTS[0]])
        observations = self._per_agent_observations()
        infos = self._infos(ball_out)
        self.agents = list(self._game_env.agents)
        return (
            observations,
            {agent: float(rewards[agent]) for agent in observations},
            {agent: bool(terminations[agent]) for agent in observations},
            {agent: bool(truncations[agent]) for agent in observations},
            infos,
        )

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._observation.copy()
        return None

    def close(self) -> None:
        self._game_env.close()

    def state(self) -> np.ndarray:
        """The whole screen, resized: the same frame every paddle observes."""
        return self._observation.copy()

    def positions(self) -> dict[str, float]:
        """The ball's centre and each paddle's vertical centre, in observation pixels."""
        game = self.game
        screen_height, screen_width = game.area.height, game.area.width
        sx, sy = self.size[1] / screen_width, self.size[0] / screen_height
        ball = game.ball._rect  # PettingZoo keeps the ball's rect private; it is the ball's true position
        # Every tier of the cake paddle is centred on its first rect's vertical centre.
        return {
            "ball_x": (ball.left + ball.width / 2) * sx,
            "ball_y": (ball.top + ball.height / 2) * sy,
            "paddle_0_y": (game.p0.rects[0].top + game.p0.rects[0].height / 2) * sy,
            "paddle_1_y": (game.p1.rects[0].top + game.p1.rects[0].height / 2) * sy,
        }

    def _field_without_ball(self) -> np.ndarray:
        """The game's screen drawn as its ``draw()`` does, less the ball: ``uint8[280, 480, 3]``."""
        game = self.game
        pygame.draw.rect(game.screen, (0, 0, 0), game.area)
        game.p0.draw(game.screen)
        game.p1.draw(game.screen)
        return game.observe()

    def _per_agent_observations(self) -> dict[str, np.ndarray]:
        return {agent: self._observation.copy() for agent in self.agents}

    def _infos(self, ball_out: bool) -> dict[str, dict[str, Any]]:
        where = self.positions()
        infos = {}
        for agent in self.agents:
            values = {**where, "paddle_y": where[f"{agent}_y"], "ball_out": ball_out}
            infos[agent] = {key: dtype(values[key]) for key, dtype in AGENT_INFO_KEYS.items()}
        return infos

    def _resize(self, screen: np.ndarray) -> np.ndarray:
        height, width = self.size
        if screen.shape[:2] == (height, width):
            return np.ascontiguousarray(screen, dtype=np.uint8)
        return cv2.resize(np.ascontiguousarray(screen), (width, height), interpolation=cv2.INTER_AREA)


def parallel_env(**kwargs: Any) -> CoopPongParallelEnv:
    """``CoopPongParallelEnv(**kwargs)``, in PettingZoo's naming."""
    return CoopPongParallelEnv(**kwargs)


class CoopPongEnv(gym.Env):
    """Cooperative Pong as one Gymnasium env acting for both paddles (``worldsim/CoopPong-v0``).

    Args: as ``CoopPongParallelEnv`` (``size``, ``render_mode``, ``hide_ball_out``, the game's
    ``GAME_DEFAULTS``).

    Observation: ``uint8[height, width, 3]``, the whole screen. Action: ``int64[2]`` in
    ``MultiDiscrete([3, 3])``, ``action[i]`` for ``possible_agents[i]`` (0 nothing, 1 up,
    2 down). Reward: the two paddles' rewards summed. ``terminated``: the ball went out;
    ``truncated``: the game's ``max_cycles`` steps were played. ``info``: ``COOP_PONG_INFO_KEYS``
    with numpy scalars, the same keys at reset and at every step.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": GAME_FPS}

    def __init__(self, size: tuple[int, int] = (64, 64), render_mode: str | None = None, hide_ball_out: bool = True, **game_kwargs: Any):
        self.parallel = CoopPongParallelEnv(size=size, render_mode=render_mode, hide_ball_out=hide_ball_out, **game_kwargs)
        self.render_mode = render_mode
        self.size = self.parallel.size
        self.observation_space = spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self.action_space = spaces.MultiDiscrete([len(ACTION_MEANINGS)] * len(AGENTS))
        self._rally_steps = 0
        self._done = True

    @property
    def possible_agents(self) -> list[str]:
        return list(AGENTS)

    @property
    def agents(self) -> list[str]:
        """The paddles, in the order of the joint action's entries."""
        return list(AGENTS)

    @property
    def game_kwargs(self) -> dict[str, Any]:
        return dict(self.parallel.game_kwargs)

    def get_action_meanings(self) -> list[str]:
        return list(ACTION_MEANINGS)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        observations, _ = self.parallel.reset(seed=seed, options=options)
        self._rally_steps = 0
        self._done = False
        rewards = dict.fromkeys(AGENTS, 0.0)
        return observations[AGENTS[0]], self._info(rewards, ball_out=False)

    def step(self, action):
        if self._done:
            raise WorldsimError("the episode is over (the ball went out or max_cycles was reached): call reset() before step()")
        joint = np.asarray(action)
        if not (np.issubdtype(joint.dtype, np.integer) and self.action_space.contains(joint)):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass two ints in {{0, 1, 2}}, one per paddle")
        observations, rewards, terminations, truncations, infos = self.parallel.step(
            {agent: int(joint[i]) for i, agent in enumerate(AGENTS)}
        )
        self._rally_steps += 1
        ball_out = bool(infos[AGENTS[0]]["ball_out"])
        terminated = any(terminations.values())
        truncated = any(truncations.values()) and not terminated
        self._done = terminated or truncated
        info = self._info(rewards, ball_out)
        return observations[AGENTS[0]], float(sum(rewards.values())), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self.parallel.render()

    def close(self) -> None:
        self.parallel.close()

    def _info(self, rewards: dict[str, float], ball_out: bool) -> dict[str, Any]:
        values = {
            **self.parallel.positions(),
            **{f"reward_{agent}": rewards[agent] for agent in AGENTS},
            "ball_out": ball_out,
            "rally_steps": self._rally_steps,
        }
        return {key: dtype(values[key]) for key, dtype in COOP_PONG_INFO_KEYS.items()}
