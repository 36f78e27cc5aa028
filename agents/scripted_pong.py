"""A scripted pair of Cooperative Pong paddles that read the ball from pixels: cheap rally data.

Each paddle moves towards the ball's height, holding still within a dead zone, so together they
keep the ball in play for long rallies. ``noise`` makes them miss: with that probability, per
paddle and per step, a paddle takes a uniformly random action instead. A dataset needs both: long
rallies to learn the bounces, and misses to learn how an episode ends.

It acts on the observation only, never on ``info``, because it must also play inside the dreamed
game, whose ``info`` has no positions. ``parse_frame`` finds the paddles and the ball in the
frame; it knows the game's geometry (``SCREEN``, the paddles' shapes as fractions of the screen),
which is PettingZoo's ``cooperative_pong_v6`` at any ``render_ratio`` and any observation size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from worldsim.errors import WorldsimError

# PettingZoo's screen (render_ratio 2) and the paddles drawn on it, as (left x, right x, height)
# rectangles centred on the paddle's vertical centre. The observation is this screen resized, so
# the shapes hold at any observation size once scaled.
SCREEN = (280, 480)  # (height, width)
LEFT_PADDLE = ((0, 10, 40),)
CAKE_PADDLE = ((465, 480, 60), (450, 465, 40), (435, 450, 20), (420, 435, 5))  # four tiers, widest at the edge
FLAT_RIGHT_PADDLE = ((460, 480, 100),)
NOOP, UP, DOWN = 0, 1, 2


@dataclass(frozen=True)
class PongFrame:
    """What ``parse_frame`` sees, in observation pixels (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``).

    ``ball``: ``(x, y)`` of its centre, or None when it is not visible apart from a paddle;
    ``paddle_y``: each paddle's vertical centre (left, right), None where a paddle is not found.
    """

    ball: tuple[float, float] | None
    paddle_y: tuple[float | None, float | None]


def parse_frame(observation: np.ndarray, cake_paddle: bool = True) -> PongFrame:
    """Find the paddles and the ball in a Cooperative Pong frame ``uint8[H, W, 3]``.

    A paddle's centre is the centroid of the longest bright run in the screen's outermost column
    (only the paddle is drawn there while the ball is in play). The ball is what stays bright once
    both paddles, drawn from their known shapes at those centres, are taken away: this also finds
    it beside or between the cake's tiers, where no fixed column window would.
    """
    if observation.ndim != 3 or observation.shape[-1] != 3:
        raise WorldsimError(f"a Cooperative Pong frame is uint8[H, W, 3], got shape {observation.shape}")
    gray = observation.max(axis=-1).astype(np.float32) / 255.0  # black and white; max is robust to tints
    height, width = gray.shape
    left_y = _run_centre(gray[:, 0])
    right_y = _run_centre(gray[:, -1])
    paddles = np.zeros_like(gray)
    if left_y is not None:
        paddles += _draw(LEFT_PADDLE, left_y, height, width)
    if right_y is not None:
        paddles += _draw(CAKE_PADDLE if cake_paddle else FLAT_RIGHT_PADDLE, right_y, height, width)
    return PongFrame(_ball(np.clip(gray - paddles, 0.0, 1.0)), (left_y, right_y))


def _run_centre(column: np.ndarray) -> float | None:
    """Centroid of the longest run of bright pixels (with its partly covered ends), or None."""
    bright = column > 0.5
    if not bright.any():
        return None
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bright.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    # one row beyond each end: the paddle's edge rows are only partly covered, and still count
    lo, hi = max(int(starts[longest]) - 1, 0), min(int(ends[longest]) + 1, len(column))
    weights = column[lo:hi]
    return float((weights * (np.arange(lo, hi) + 0.5)).sum() / weights.sum())


def _coverage(start: float, stop: float, n: int) -> np.ndarray:
    """How much of each of ``n`` unit pixels the interval ``[start, stop)`` covers."""
    cells = np.arange(n, dtype=np.float32)
    return np.clip(np.minimum(stop, cells + 1) - np.maximum(start, cells), 0.0, 1.0)


def _draw(rects: tuple[tuple[int, int, int], ...], centre_y: float, height: int, width: int) -> np.ndarray:
    """The paddle ``rects`` centred at ``centre_y`` as INTER_AREA would draw them: covered fractions."""
    sx, sy = width / SCREEN[1], height / SCREEN[0]
    image = np.zeros((height, width), np.float32)
    for x0, x1, tall in rects:
        half = tall * sy / 2
        image += np.outer(_coverage(centre_y - half, centre_y + half, height), _coverage(x0 * sx, x1 * sx, width))
    return np.minimum(image, 1.0)


def _ball(residual: np.ndarray) -> tuple[float, float] | None:
    peak = float(residual.max())
    if peak < 0.25:
        return None
    # Half the peak: a ball smaller than a pixel (small observations) still shows as one blob.
    mask = (residual > 0.5 * peak).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    # the blob's box plus one pixel around it, weighted by brightness: its partly covered edges count
    rows = slice(max(y - 1, 0), min(y + h + 1, residual.shape[0]))
    cols = slice(max(x - 1, 0), min(x + w + 1, residual.shape[1]))
    window = residual[rows, cols]
    total = float(window.sum())
    row_index = np.arange(rows.start, rows.stop) + 0.5
    col_index = np.arange(cols.start, cols.stop) + 0.5
    return float((window.sum(axis=0) * col_index).sum() / total), float((window.sum(axis=1) * row_index).sum() / total)


class ScriptedPongAgent:
    """Both Cooperative Pong paddles: follow the ball's height seen in the frame, with action noise.

    Args:
        env: the joint Cooperative Pong env (``worldsim/CoopPong-v0`` or its dream): observations
            ``uint8[H, W, 3]``, actions ``MultiDiscrete([3, 3])`` (0 nothing, 1 up, 2 down).
        noise: probability, per paddle and per step, of a uniformly random action instead.
        dead_zone: a paddle holds still while the ball's centre is within this many pixels of its
            own (observation pixels); a paddle step is about 2.7 pixels at 64x64.
        lost_steps: while the ball is not seen (passing a paddle, or lost in a dream), the paddles
            keep chasing where it was last seen for this many steps, then return to the centre.
        cake_paddle: the right paddle is PettingZoo's cake (the default game); False for a flat one.
        seed: seeds the noise (``reset(seed)`` reseeds it; without either, OS entropy).

    ``act`` returns ``int64[2]``: the left paddle's action, then the right one's.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        noise: float = 0.45,
        dead_zone: float = 1.5,
        lost_steps: int = 3,
        cake_paddle: bool = True,
        seed: int | None = None,
    ):
        expected = gym.spaces.MultiDiscrete([3, 3])
        if env.action_space != expected:
            raise WorldsimError(
                f"the scripted Pong agent plays both paddles of Cooperative Pong ({expected}), got action space {env.action_space}: "
                "use --env coop-pong"
            )
        if not 0.0 <= noise <= 1.0:
            raise WorldsimError(f"noise must be in [0, 1], got {noise}")
        if dead_zone < 0:
            raise WorldsimError(f"dead_zone must be >= 0 pixels, got {dead_zone}")
        if lost_steps < 0:
            raise WorldsimError(f"lost_steps must be >= 0, got {lost_steps}")
        self.noise = float(noise)
        self.dead_zone = float(dead_zone)
        self.lost_steps = int(lost_steps)
        self.cake_paddle = bool(cake_paddle)
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode; a seed reseeds the noise, ``None`` keeps its stream (the protocol's meaning)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._last_ball: tuple[float, float] | None = None
        self._unseen = 0  # steps since the ball was last seen

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        frame = parse_frame(np.asarray(observation), self.cake_paddle)
        if frame.ball is not None:
            self._last_ball, self._unseen = frame.ball, 0
        else:
            self._unseen += 1
        target = self._last_ball[1] if self._last_ball is not None and self._unseen <= self.lost_steps else observation.shape[0] / 2
        actions = np.array([self._follow(paddle_y, target) for paddle_y in frame.paddle_y], dtype=np.int64)
        # Both draws every step, whatever the outcome: the stream stays aligned with the step count.
        explore = self._rng.random(2) < self.noise
        random_actions = self._rng.integers(0, 3, size=2)
        return np.where(explore, random_actions, actions).astype(np.int64)

    def _follow(self, paddle_y: float | None, target_y: float) -> int:
        if paddle_y is None:  # not on screen (only in a bad dream): nothing to steer
            return NOOP
        if target_y < paddle_y - self.dead_zone:
            return UP  # rows grow downwards; "up" lowers the paddle's row
        if target_y > paddle_y + self.dead_zone:
            return DOWN
        return NOOP
