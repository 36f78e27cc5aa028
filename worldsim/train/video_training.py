"""``worldsim train --model video-<arch>``: the video diffusion model as a task of the one loop.

Clips of ``clip_frames`` consecutive real frames (never across an episode's end) from any Minari
datasets of image observations, area-downscaled to the model's size; the loss is the clip
denoiser's (``worldsim.models.video_denoiser``). ``train.max_cpu_minutes`` stops a run after a fixed
CPU time, which is how the temporal layers are compared at equal CPU time. ``OUT/model`` is
the finished model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import RandomSampler

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.checkpoint_kinds import VIDEO_DIFFUSION
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.models.video_model import VideoModel, VideoModelConfig
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"


class VideoObjective(nn.Module):
    def __init__(self, model: VideoModel):
        super().__init__()
        self.model = model

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"denoising": self.model.denoiser.loss(clips)}


class VideoTask:
    name = "video"

    def __init__(self, objective: VideoObjective, saved_config: dict[str, Any], windows: SequenceDataset):
        self.objective, self.saved_config, self.dataset = objective, saved_config, windows

    def sampler(self, num_samples: int, generator: torch.Generator) -> RandomSampler:
        return RandomSampler(self.dataset, replacement=True, num_samples=num_samples, generator=generator)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        return {"clips": self.objective.model.clips(batch["frames"].to(device))}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass  # held-out quality is measured on the finished model (benchmarks/video_quality.py)


def train_video_model(model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True) -> Path:
    """Train (or resume) a video diffusion model; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(DatasetTraining, train_values, where="train")
    if not cfg.datasets:
        raise WorldsimError("train.datasets is empty: name the Minari datasets of image episodes to train the video model on")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    config = from_dict(VideoModelConfig, {key: value for key, value in model_values.items() if key != "kind"}, where="model")
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.datasets]
    windows = SequenceDataset(datasets, config.clip_frames)
    saved_config = {"kind": VIDEO_DIFFUSION, "video": to_dict(config), "datasets": sorted(cfg.datasets)}
    model = VideoModel(config)
    task = VideoTask(VideoObjective(model), saved_config, windows)
    result = train_with_tensorboard(task, cfg, out, "video", accelerator, seed=cfg.seed, progress=progress)
    if not accelerator.is_main_process:
        return out / MODEL_DIR
    parameters = sum(p.numel() for p in model.denoiser.parameters())
    unet = config.unet
    card = "\n".join(
        [
            "# Video diffusion model card",
            "",
            (
                f"- Space-time U-Net, temporal layer `{unet.temporal}` {unet.temporal_options or ''} from level {unet.temporal_from_level}, "
                f"blocks {list(unet.block_channels)}, {parameters / 1e6:.2f} M parameters."
            ),
            f"- Clips of {config.clip_frames} frames at {unet.image_size}x{unet.image_size}; longer clips continue in chunks overlapping by {config.overlap}.",
            f"- Data: {', '.join(cfg.datasets)} ({len(windows)} clips).",
            f"- Training: {result.step} steps of batch {cfg.batch_size}, {result.seconds / 3600:.2f} h ({result.cpu_seconds / 60:.1f} CPU-minutes) on {hardware_description(accelerator)}.",
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    files = {"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)}
    save_checkpoint(out / MODEL_DIR, model.to("cpu"), saved_config, files=files)
    return out / MODEL_DIR
