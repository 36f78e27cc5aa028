"""Writing frames to mp4/gif with moviepy, and to a PNG grid (a strip to look at), atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worldsim.errors import WorldsimError

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise WorldsimError(f"video path {str(path)!r} must end in {' or '.join(VIDEO_SUFFIXES)}")
    return path


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int) -> Path:
    """Write ``uint8[H, W, 3]`` frames to ``path`` (.mp4 with H.264, or .gif).

    The file appears only when complete: moviepy writes a temporary name that is then renamed.
    """
    from moviepy import ImageSequenceClip  # imported here: moviepy is slow to import

    path = check_video_path(path)
    if not frames:
        raise WorldsimError("no frames to write: the rollout produced no observations")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    clip = ImageSequenceClip([np.asarray(frame) for frame in frames], fps=fps)
    try:
        if path.suffix.lower() == ".gif":
            clip.write_gif(str(tmp), fps=fps, logger=None)
        else:
            clip.write_videofile(str(tmp), fps=fps, codec="libx264", audio=False, logger=None)
        os.replace(tmp, path)
    finally:
        clip.close()
        tmp.unlink(missing_ok=True)
    return path


def count_video_frames(path: str | os.PathLike) -> int:
    """The number of frames a written .mp4 or .gif holds, read back from the file.

    Not always the number given to ``write_video``: moviepy derives the frame count from a float
    duration (frames / fps) and can write one frame fewer (31 frames at 15 fps give 30). What a
    command reports is what the file holds.
    """
    path = Path(path)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        with Image.open(path) as image:
            return int(image.n_frames)
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def write_frame_grid(rows: Sequence[Sequence[np.ndarray]], path: str | os.PathLike, scale: int = 1, gap: int = 0) -> Path:
    """Write rows of ``uint8[H, W, C]`` frames (every frame the same shape; rows may differ in
    length) as one PNG: each frame upscaled ``scale`` times (nearest), ``gap`` white pixels between
    neighbours. Written to a temporary name, then renamed."""
    from PIL import Image

    rows = [[np.asarray(frame) for frame in row] for row in rows]
    if not rows or not all(rows):
        raise WorldsimError("no frames to lay out: every row of a frame grid needs at least one frame")
    height, width = rows[0][0].shape[0] * scale, rows[0][0].shape[1] * scale
    channels = rows[0][0].shape[2] if rows[0][0].ndim == 3 else 1
    columns = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, channels), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            tile = frame.repeat(scale, axis=0).repeat(scale, axis=1).reshape(height, width, channels)
            canvas[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        Image.fromarray(canvas.squeeze(-1) if channels == 1 else canvas).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
