"""Writing frames to mp4/gif with moviepy, atomically."""

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
