"""``worldsim train --model presence-mario``: the player detector as a task of the one loop.

Single real frames; the target is a Gaussian heatmap on Mario's centre, computed from the RAM labels
``x_pos``, ``y_pos`` and ``camera_x`` (``worldsim.rewards.presence.mario_screen_position``), empty
when he is off screen; CenterNet's focal loss. The datasets must record ``camera_x`` (collected with
``worldsim/MarioReal-v0`` since it reports the camera). ``OUT/model`` is the finished detector; its
card gives its localisation error on held-out real frames (``train.heldout``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import RandomSampler

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.checkpoint_kinds import PLAYER_DETECTOR
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.rewards.presence import PlayerDetector, PlayerDetectorConfig, focal_loss, heatmap_targets, mario_screen_position, peak
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"
LABELS = ("x_pos", "y_pos", "camera_x")
COLLECT_HINT = (
    "collect real episodes that record it, e.g. `worldsim collect --env mario --agent scripted:0.8,random:0.2 --steps 12000 "
    "--seed 1000 --dataset-id worldsim/mario-presence-v0 scripted.balance_actions=true scripted.epsilon=0.15 scripted.hold_steps=6`"
)


@dataclass
class PresenceTraining(DatasetTraining):
    """``datasets``: real episodes recording camera_x."""

    heldout: str | None = None  # another policy's real episodes, for the card's localisation error
    heldout_frames: int = 1000


class PresenceObjective(nn.Module):
    def __init__(self, detector: PlayerDetector):
        super().__init__()
        self.detector = detector

    def forward(self, frames: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmap": focal_loss(self.detector(frames), targets)}


def frames_and_targets(batch: dict[str, torch.Tensor], sigma: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Windows of one frame -> ``frames float[B, C, H, W]``, heatmap targets, and Mario's centre (pixels)."""
    frames = from_uint8(batch["frames"][:, -1])
    column, row = mario_screen_position(*(batch[key][:, -1].numpy() for key in LABELS), size=frames.shape[-1])
    return frames, heatmap_targets(column, row, frames.shape[-1], sigma), column, row


class PresenceTask:
    name = "player_detector"

    def __init__(self, objective: PresenceObjective, saved_config: dict, frames: SequenceDataset):
        self.objective, self.saved_config, self.dataset = objective, saved_config, frames

    def sampler(self, num_samples: int, generator: torch.Generator):
        return RandomSampler(self.dataset, replacement=True, num_samples=num_samples, generator=generator)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        frames, targets, _, _ = frames_and_targets(batch, self.objective.detector.config.heatmap_sigma)
        return {"frames": frames.to(device), "targets": targets.to(device)}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass


def require_camera(dataset_ids: list[str]) -> None:
    """One error naming a dataset whose infos lack ``camera_x`` (it predates the label)."""
    for dataset_id in dataset_ids:
        episode = next(load_dataset(dataset_id).iterate_episodes())
        if "camera_x" not in episode.infos:
            raise WorldsimError(
                f"{dataset_id} does not record camera_x (collected before MarioReal-v0 reported the camera): {COLLECT_HINT}"
            )


@torch.no_grad()
def localisation(detector: PlayerDetector, frames: SequenceDataset, count: int, seed: int, batch_size: int = 128) -> dict[str, float]:
    """On ``count`` held-out frames with Mario on screen: the distance (pixels) from the detector's
    peak to his labelled centre (median, share within 2 and 4 pixels) and its mean peak probability."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(frames), size=min(count, len(frames)), replace=False)
    errors, confidences = [], []
    for start in range(0, len(chosen), batch_size):
        items = [frames[int(i)] for i in chosen[start : start + batch_size]]
        batch = {key: torch.stack([item[key] for item in items]) for key in ("frames", *LABELS)}
        images, _, column, row = frames_and_targets(batch, detector.config.heatmap_sigma)
        size = images.shape[-1]
        on_screen = (column >= 0) & (column < size) & (row >= 0) & (row < size)
        best, found_column, found_row = peak(detector(images))
        error = np.hypot(found_column.numpy() - column, found_row.numpy() - row)
        errors.append(error[on_screen])
        confidences.append(torch.sigmoid(best).numpy()[on_screen])
    error, confidence = np.concatenate(errors), np.concatenate(confidences)
    return {
        "frames": len(error),
        "median_error_px": float(np.median(error)),
        "within_2px": float((error <= 2).mean()),
        "within_4px": float((error <= 4).mean()),
        "mean_confidence": float(confidence.mean()),
    }


def train_player_detector(
    model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True
) -> Path:
    """Train (or resume) the detector; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(PresenceTraining, train_values, where="train")
    if not cfg.datasets:
        raise WorldsimError(f"train.datasets is empty: name Minari datasets of real episodes that record camera_x; {COLLECT_HINT}")
    require_camera(cfg.datasets + ([cfg.heldout] if cfg.heldout else []))
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    config = from_dict(PlayerDetectorConfig, {key: value for key, value in model_values.items() if key != "kind"}, where="model")
    frames = SequenceDataset([load_dataset(dataset_id) for dataset_id in cfg.datasets], 1, LABELS)
    saved_config = {"kind": PLAYER_DETECTOR, "detector": to_dict(config), "datasets": sorted(cfg.datasets)}
    detector = PlayerDetector(config)
    task = PresenceTask(PresenceObjective(detector), saved_config, frames)
    result = train_with_tensorboard(task, cfg, out, "player_detector", accelerator, seed=cfg.seed, progress=progress)
    if not accelerator.is_main_process:
        return out / MODEL_DIR
    detector = detector.to("cpu").eval()
    heldout = (
        localisation(detector, SequenceDataset(load_dataset(cfg.heldout), 1, LABELS), cfg.heldout_frames, cfg.seed) if cfg.heldout else None
    )
    card = "\n".join(
        [
            "# Player detector card",
            "",
            f"- Reads one {config.image_size}x{config.image_size} frame; a heatmap at half resolution peaks on Mario's centre.",
            f"- Labels: Mario's centre from the RAM (x_pos, y_pos, camera_x; worldsim.rewards.presence.mario_screen_position), on {', '.join(cfg.datasets)}.",
            f"- Training: {result.step} steps of batch {cfg.batch_size}, focal loss, {result.seconds / 3600:.2f} h on {hardware_description(accelerator)}.",
            (
                f"- Held-out ({cfg.heldout}, {heldout['frames']} frames with Mario on screen): median error {heldout['median_error_px']:.2f} px, "
                f"within 2 px {heldout['within_2px']:.3f}, within 4 px {heldout['within_4px']:.3f}, mean peak probability {heldout['mean_confidence']:.3f}."
                if heldout
                else "- Held-out: not measured (train.heldout is null)."
            ),
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    files = {"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)}
    save_checkpoint(out / MODEL_DIR, detector, saved_config | ({"heldout": heldout} if heldout else {}), files=files)
    return out / MODEL_DIR
