"""Find the red box in MiniWorld's four rooms from panoramas, with or without imagining ahead (GenEx).

The seeker reads the panorama (``worldsim/MiniWorldPanorama-v0``'s, or an imagined one): the red
box is the only red thing in the four rooms. When it sees red, it turns until the red is ahead
and walks to it (a step forward that changes nothing is a wall: it makes a detour). When it does
not, it has to choose where to go:

* without imagination, a random direction (a quarter turn left or right, or straight on) and a
  few steps of walking;
* with imagination (``explorer=PATH``), it first imagines a walk of ``frames`` steps forward in
  each of the four directions (the panorama rolled by a quarter turn; the four walks in one
  sampler call of a ``PanoramaEngine``) and goes the way whose imagined walk shows the most red.
  Where none shows red, it takes an open way of straight on, a quarter left and a quarter right:
  with ``open_ways="widest"`` the one whose imagined walk changes the view most, with
  ``open_ways="random"`` one at random among those whose walk changes the view at least half as
  much (blind's random choice without the walls). A walk into a wall changes nothing in the real
  rooms, and the explorer learned that: on 160 held-out starts and directions its imagined change
  after 4 steps ranks a free walk above a blocked one 88% of the time. With ``open_ways="off"`` it
  falls back to the blind agent's random choice. ``follow_red="unseen"`` follows imagined red only
  when the panorama it imagines from shows none (in a detour, the red in view is behind a wall, and a
  walk into that wall still shows it); ``"never"`` ignores imagined red.

Success is measured in the real simulator (``benchmarks/explorer_imagination.py``; BENCHMARKS.md,
"Does imagining help?"). With the real rooms walked in the explorer's place (an oracle: it shows the
box past a doorway), ``follow_red="unseen"`` with ``open_ways="random"`` beats blind choice; the
defaults, the first rules measured, do not."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.errors import WorldsimError

TURN_LEFT, TURN_RIGHT, MOVE_FORWARD = 0, 1, 2
OPEN_WAY_RULES = ("widest", "random", "off")
FOLLOW_RED_RULES = ("always", "unseen", "never")
OPEN_FRACTION = 0.5  # "random": a way is open when its imagined walk changes the view at least this share of the most


def red_columns(panorama: np.ndarray) -> np.ndarray:
    """``int[W]``: the red pixels of each column of ``uint8[H, W, 3]`` (the box: strong red, little green or blue)."""
    red, green, blue = (panorama[..., channel].astype(np.int16) for channel in range(3))
    return ((red > 120) & (red > 2 * green) & (red > 2 * blue)).sum(axis=0)


def red_bearing(panorama: np.ndarray, min_pixels: int = 3) -> float | None:
    """Degrees counter-clockwise from the heading to the red seen in the panorama (its circular mean), or None."""
    counts = red_columns(panorama)
    if counts.sum() < min_pixels:
        return None
    width = len(counts)
    azimuth = np.radians(180.0 - (np.arange(width) + 0.5) * 360.0 / width)  # the panorama env's column azimuths
    return float(np.degrees(np.arctan2((counts * np.sin(azimuth)).sum(), (counts * np.cos(azimuth)).sum())))


class PanoramaSeeker:
    """Walks to the red box; see the module docstring.

    Args:
        env: ``worldsim/MiniWorldPanorama-v0`` (or its imagined twin ``worldsim/Explorer-v0``).
        explorer: an explorer checkpoint to imagine with; None: no imagination.
        turn_degrees: the env's turn (22.5 for the panorama env).
        walk_steps: steps walked after choosing a direction.
        sampling_steps: the explorer's Euler steps per imagined walk.
        open_ways: where no imagined walk shows red: ``"widest"``, the way whose imagined walk
            changes the view most; ``"random"``, a random one of the ways it shows open; ``"off"``,
            a random one, as blind.
        follow_red: go the way whose imagined walk shows the most red: ``"always"``, ``"unseen"`` (only
            when none is in view now), or ``"never"`` (only the open ways count).
        seed: seeds the random choices (the protocol's meaning of ``reset(seed)``).
    """

    def __init__(
        self,
        env: gym.Env,
        explorer: str | None = None,
        turn_degrees: float = 22.5,
        walk_steps: int = 4,
        sampling_steps: int = 4,
        open_ways: str = "widest",
        follow_red: str = "always",
        device: str | None = None,
        seed: int | None = None,
    ):
        if not isinstance(env.action_space, gym.spaces.Discrete) or env.action_space.n != 3:
            raise WorldsimError(f"the seeker turns left/right and moves forward (Discrete(3)), the env has {env.action_space}")
        self.turn_degrees, self.walk_steps = float(turn_degrees), int(walk_steps)
        self.quarter = round(90.0 / self.turn_degrees)
        if open_ways not in OPEN_WAY_RULES:
            raise WorldsimError(f"open_ways must be one of {', '.join(map(repr, OPEN_WAY_RULES))}, got {open_ways!r}")
        if follow_red not in FOLLOW_RED_RULES:
            raise WorldsimError(f"follow_red must be one of {', '.join(map(repr, FOLLOW_RED_RULES))}, got {follow_red!r}")
        self.open_ways, self.follow_red = open_ways, follow_red
        self.engine = None
        if explorer is not None:
            from worldsim.engine import resolve_device
            from worldsim.engine.panorama_engine import PanoramaEngine
            from worldsim.models.panorama_explorer import load_explorer

            resolved = resolve_device(device)
            model, starts = load_explorer(explorer, resolved)
            self.engine = PanoramaEngine(model, starts, num_walks=4, device=resolved, sampling_steps=sampling_steps)
        self.rng = np.random.default_rng(seed)
        if self.engine is not None:
            self.engine.seed(self.rng)
        self.plan: list[int] = []
        self.imagined = 0  # walks imagined this episode (four directions each time)
        self._last: tuple[np.ndarray, int] | None = None  # the last observation and action: a forward that changed nothing hit a wall
        self.detour = False  # the plan goes round a wall between the agent and the red it saw

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            if self.engine is not None:
                self.engine.seed(self.rng)
        self.plan, self.imagined, self._last, self.detour = [], 0, None, False

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> int:
        blocked = self._last is not None and self._last[1] == MOVE_FORWARD and np.array_equal(self._last[0], observation)
        bearing = None if self.detour else red_bearing(observation)
        if bearing is not None and not blocked:  # seen: face it, then walk
            self.plan = []
            # Turn only when a turn brings the red clearly nearer ahead: at exactly half a turn off, a
            # turn leaves it half a turn off the other way, and the seeker turned back and forth for ever.
            ahead = abs(bearing) <= 0.6 * self.turn_degrees
            action = MOVE_FORWARD if ahead else TURN_LEFT if bearing > 0 else TURN_RIGHT
        else:
            if bearing is not None:  # seen, but a wall is in the way: a detour, played out before seeking again
                self.detour = True
            if not self.plan or blocked:
                self.plan = self._choose_direction(observation)
            action = self.plan.pop(0)
            self.detour = self.detour and bool(self.plan)
        self._last = (observation.copy(), action)  # a copy: a caller may reuse its observation buffer
        return action

    def _choose_direction(self, panorama: np.ndarray) -> list[int]:
        """Turns (a quarter left, right, or about) then ``walk_steps`` forward."""
        quarters = None
        if self.engine is not None:
            quarters = self._imagined_best_quarter(panorama)
        if quarters is None:
            quarters = int(self.rng.choice([0, 1, -1]))  # straight on, a quarter left, a quarter right
        turns = [TURN_LEFT] * (quarters * self.quarter) if quarters > 0 else [TURN_RIGHT] * (-quarters * self.quarter)
        return turns + [MOVE_FORWARD] * self.walk_steps

    def _imagined_best_quarter(self, panorama: np.ndarray) -> int | None:
        """The quarter turn (0, 1 left, 2 about, -1 right) whose imagined walk shows the most red, else
        an open way by ``open_ways`` (or None: choose at random)."""
        width = panorama.shape[1]
        # turning left by a quarter brings the left quarter to the middle: the panorama rolls right
        starts = np.stack([np.roll(panorama, q * width // 4, axis=1) for q in range(4)])
        self.engine.reset(np.arange(4), self.rng, starts)
        red = np.zeros(4)
        for _ in range(self.engine.walks.shape[1]):
            frames = self.engine.step(np.full(4, MOVE_FORWARD))
            red = np.maximum(red, [red_columns(frame).sum() for frame in frames])
        self.imagined += 1
        follow = self.follow_red == "always" or (self.follow_red == "unseen" and red_bearing(panorama) is None)
        if follow and red.max() >= 3:
            best = int(red.argmax())
        elif self.open_ways == "off":
            return None
        else:  # no red followed: among the ways that are not back, by how much the imagined walk changes the view
            ways = np.array([0, 1, 3])
            change = np.abs(frames.astype(np.int16) - starts.astype(np.int16)).mean(axis=(1, 2, 3))[ways]
            if self.open_ways == "widest":
                best = int(ways[change.argmax()])
            else:
                best = int(self.rng.choice(ways[change >= OPEN_FRACTION * change.max()]))
        return best if best < 3 else -1
