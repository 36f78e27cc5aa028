"""``worldsim generate``: a long clip from a video diffusion model, written as mp4 or gif.

The clip starts from nothing, or from the first frames of a real episode (``start_dataset``,
``start_episode``): then its first ``overlap`` frames are real and the level the model continues
is the one on screen. Each frame is upscaled ``scale`` times (nearest) for viewing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from worldsim.core.frames import to_uint8
from worldsim.data.minari_io import load_dataset
from worldsim.errors import WorldsimError
from worldsim.models.video_model import VideoModel, load_video_model
from worldsim.video import check_video_path, count_video_frames, write_video


def real_start(model: VideoModel, dataset_id: str, episode: int) -> torch.Tensor:
    """The first ``overlap`` frames of episode ``episode`` of ``dataset_id`` as the model's clip
    ``float[1, C, overlap, s, s]``."""
    dataset = load_dataset(dataset_id)
    if not 0 <= episode < dataset.total_episodes:
        raise WorldsimError(f"--start-episode {episode} is out of range: {dataset_id} has episodes 0..{dataset.total_episodes - 1}")
    frames = np.asarray(next(iter(dataset.iterate_episodes([episode]))).observations)
    overlap = model.config.overlap
    if len(frames) < overlap:
        raise WorldsimError(f"episode {episode} of {dataset_id} has {len(frames)} frames, fewer than the {overlap} a start needs: choose another")
    return model.clips(torch.from_numpy(frames[None, :overlap]))


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """``uint8[T, H, W, C]`` -> ``uint8[T, H * scale, W * scale, C]`` (nearest)."""
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def generate_video(
    checkpoint: str | os.PathLike,
    num_frames: int,
    video: str | os.PathLike,
    *,
    seed: int = 0,
    start_dataset: str | None = None,
    start_episode: int = 0,
    scale: int = 4,
    fps: int = 15,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """Generate ``num_frames`` frames with the model at ``checkpoint`` and write them to ``video``;
    returns them (``uint8[num_frames, s, s, C]``, before upscaling)."""
    video = check_video_path(video)
    if num_frames < 1:
        raise WorldsimError(f"--frames must be >= 1, got {num_frames}")
    if scale < 1:
        raise WorldsimError(f"--scale must be >= 1, got {scale}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_video_model(checkpoint, device)
    first = real_start(model, start_dataset, start_episode).to(device) if start_dataset else None
    if first is not None and first.shape[2] >= num_frames:
        raise WorldsimError(f"--frames {num_frames} is no longer than the {first.shape[2]} real start frames: ask for more")
    generator = torch.Generator(device).manual_seed(seed)
    clip = model.generate(num_frames, first=first, generator=generator, progress=progress)
    frames = to_uint8(clip[0].transpose(0, 1)).cpu().numpy()  # float[C, F, s, s] -> uint8[F, s, s, C]
    written = write_video(list(upscale(frames, scale)), video, fps=fps)
    log(f"wrote {count_video_frames(written)} frames to {Path(written)}" + (f" (the first {first.shape[2]} real)" if first is not None else ""))
    return frames
