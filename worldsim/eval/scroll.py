"""Does the dreamed level scroll with Mario? The scroll of a frame sequence, measured from pixels.

The real game tells its camera position (``MarioReal-v0``'s ``info["camera_x"]``, read from RAM);
a dream only has frames. ``estimate_scroll`` finds the horizontal shift (in 64-pixel frame units,
to a quarter pixel) that best maps one frame's background onto the next's; it is applied to real
and dreamed frames alike, and checked against the RAM camera on real frames, so the comparison
does not depend on the estimator being exact.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

SHIFTS = np.arange(0.0, 4.01, 0.25)  # candidate shifts per step (the camera moves at most ~3 px of 64)
ROWS = slice(12, 52)  # below the score line, above the ground's bottom rows


def _shifted(frame: np.ndarray, shift: float) -> np.ndarray:
    """``frame[:, x + shift]`` by linear interpolation along x (float32)."""
    whole, part = int(np.floor(shift)), shift - np.floor(shift)
    width = frame.shape[1]
    left = frame[:, whole : width - 5 + whole]
    right = frame[:, whole + 1 : width - 4 + whole]
    return (1 - part) * left + part * right


def estimate_scroll(previous: np.ndarray, current: np.ndarray) -> float:
    """The camera's move between two ``uint8[H, W, 3]`` frames, in pixels of these frames (>= 0:
    Mario's World 1-1 never scrolls back)."""
    before = previous[ROWS].astype(np.float32)
    after = current[ROWS].astype(np.float32)[:, : previous.shape[1] - 5]
    costs = [np.abs(after - _shifted(before, s)).mean() for s in SHIFTS]
    return float(SHIFTS[int(np.argmin(costs))])


def sequence_scroll(frames: np.ndarray) -> np.ndarray:
    """Cumulative scroll ``float[T]`` of ``uint8[T + 1, H, W, 3]`` frames (step t: frames 0..t+1)."""
    return np.cumsum([estimate_scroll(a, b) for a, b in pairwise(frames)])
