"""``worldsim train --model idm-mario``: the inverse-dynamics probe as a task of the one loop.

Windows of ``frames`` real steps (episode starts padded) whose last ``held_steps`` steps share one
action, drawn so that every action is the label equally often; cross-entropy on that action.
``OUT/model`` is the finished probe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import WeightedRandomSampler

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.models.inverse_dynamics import IDM_KIND, InverseDynamicsConfig, InverseDynamicsModel
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"


def held_actions(windows: SequenceDataset, held_steps: int) -> np.ndarray:
    """Per window, the action its last ``held_steps`` steps share, or -1 where they differ (or where
    a step is episode-start padding, whose action 0 was never taken)."""
    labels = np.full(len(windows), -1, np.int64)
    for index, (episode, start) in enumerate(windows.windows):
        steps = np.arange(start + windows.length - held_steps, start + windows.length)
        if steps[0] < 1:
            continue
        actions = windows.episodes[episode].actions[steps]
        if (actions == actions[0]).all():
            labels[index] = actions[0]
    return labels


class InverseDynamicsObjective(nn.Module):
    def __init__(self, model: InverseDynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"action": nn.functional.cross_entropy(self.model(frames), actions)}


class InverseDynamicsTask:
    name = "inverse_dynamics"

    def __init__(self, objective, saved_config, windows: SequenceDataset, held_steps: int):
        self.objective, self.saved_config, self.dataset, self.held_steps = objective, saved_config, windows, held_steps

    def sampler(self, num_samples: int, generator: torch.Generator):
        labels = held_actions(self.dataset, self.held_steps)
        counts = np.bincount(labels[labels >= 0], minlength=1)
        weights = np.where(labels >= 0, 1.0 / np.maximum(counts[np.maximum(labels, 0)], 1), 0.0)  # action-balanced, held windows only
        return WeightedRandomSampler(torch.as_tensor(weights), num_samples, replacement=True, generator=generator)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        return {"frames": from_uint8(batch["frames"].to(device)), "actions": batch["actions"][:, -1].to(device)}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass


def train_inverse_dynamics(model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True) -> Path:
    """Train (or resume) the probe on real episodes; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(DatasetTraining, train_values, where="train")
    if not cfg.datasets:
        raise WorldsimError("train.datasets is empty: name the Minari datasets of real episodes to train the probe on")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.datasets]
    values = {key: value for key, value in model_values.items() if key != "kind"}
    config = from_dict(InverseDynamicsConfig, {**values, "num_actions": int(datasets[0].spec.action_space.n)}, where="model")
    if not 1 <= config.held_steps < config.frames:
        raise WorldsimError(f"model.held_steps must be in 1..frames-1 = {config.frames - 1}, got {config.held_steps}")
    windows = SequenceDataset(datasets, config.frames, pad_start=config.frames - config.held_steps - 1)
    saved_config = {"kind": IDM_KIND, "inverse_dynamics": to_dict(config), "datasets": sorted(cfg.datasets)}
    model = InverseDynamicsModel(config)
    task = InverseDynamicsTask(InverseDynamicsObjective(model), saved_config, windows, config.held_steps)
    result = train_with_tensorboard(task, cfg, out, "inverse_dynamics", accelerator, seed=cfg.seed, progress=progress)
    if not accelerator.is_main_process:  # one process writes the model, as for the planner
        return out / MODEL_DIR
    card = "\n".join(
        [
            "# Inverse-dynamics probe card",
            "",
            f"- Reads {config.frames} consecutive frames, classifies the action held over the last {config.held_steps} ({config.num_actions} actions).",
            f"- Data: {', '.join(cfg.datasets)} (real episodes), action-balanced.",
            f"- Training: {result.step} steps of batch {cfg.batch_size}, {result.seconds / 3600:.2f} h on {hardware_description(accelerator)}.",
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    save_checkpoint(out / MODEL_DIR, model.to("cpu"), saved_config, files={"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)})
    return out / MODEL_DIR
