"""``worldsim train --model df-<maze>``: the diffusion-forcing planner as a task of the one loop.

Windows of ``num_tokens * frame_stack`` steps inside the episodes of PointMaze datasets (written by
``worldsim collect`` with the waypoint expert), each token noised to its own level
(``DiffusionForcing.loss``). The loop (``worldsim.train.loop``) does the rest: AdamW with warm-up,
gradient clipping, EMA, accelerate, atomic resumable checkpoints in ``OUT/planner``. ``OUT/model``
is the finished planner with its model card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import RandomSampler

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.checkpoint_kinds import DIFFUSION_FORCING_PLANNER
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.trajectories import TrajectoryWindows
from worldsim.errors import WorldsimError
from worldsim.models.trajectory_model import TrajectoryModelConfig, build_trajectory_model
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"
# The mazes a planner can be trained for, and their env ids (kept here: train does not import envs).
MAZE_ENV_IDS = {"umaze": "worldsim/PointMaze-UMaze-v0", "medium": "worldsim/PointMaze-Medium-v0", "large": "worldsim/PointMaze-Large-v0"}


class PlannerObjective(nn.Module):
    """``forward(tokens float[B, T, D])`` -> ``{"diffusion_forcing": loss}``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"diffusion_forcing": self.model(tokens)}


class PlannerTask:
    name = "planner"

    def __init__(self, objective: PlannerObjective, saved_config: dict[str, Any], windows: TrajectoryWindows):
        self.objective, self.saved_config, self.dataset = objective, saved_config, windows

    def sampler(self, num_samples: int, generator: torch.Generator):
        return RandomSampler(self.dataset, replacement=True, num_samples=num_samples, generator=generator)

    def to_batch(self, batch: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return {"tokens": batch.to(device)}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass


def train_planner(model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True) -> Path:
    """Train (or resume) a diffusion-forcing planner; returns the finished ``out/model`` folder."""
    out = Path(out)
    cfg = from_dict(DatasetTraining, train_values, where="train")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    values = {key: value for key, value in model_values.items() if key != "kind"}
    maze = values.get("maze")
    if maze not in MAZE_ENV_IDS:
        raise WorldsimError(f"unknown maze {maze!r} in the planner config: choose one of {', '.join(MAZE_ENV_IDS)}")
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.datasets]
    for dataset in datasets:
        env_id = dataset.spec.env_spec.id if dataset.spec.env_spec is not None else None
        if env_id != MAZE_ENV_IDS[maze]:
            raise WorldsimError(f"dataset {dataset.id} was collected in {env_id}, not {MAZE_ENV_IDS[maze]}: train the {maze} planner on {maze} data")
    windows = TrajectoryWindows(datasets, int(values.get("num_tokens", 16)), int(values.get("frame_stack", 8)))
    config = TrajectoryModelConfig.from_dict({**values, "normalizer": windows.normalizer.to_dict()})
    saved_config = {"kind": DIFFUSION_FORCING_PLANNER, "planner": config.to_dict()}
    model = build_trajectory_model(config)
    task = PlannerTask(PlannerObjective(model), saved_config, windows)
    result = train_with_tensorboard(task, cfg, out, "planner", accelerator, seed=cfg.seed, progress=progress)
    if accelerator.is_main_process:
        steps_total = sum(len(ep) for ep in windows.episodes)
        card = "\n".join(
            [
                f"# Diffusion-forcing planner card: PointMaze {maze}",
                "",
                f"- Data: {', '.join(windows.dataset_ids)} ({len(windows.episodes)} episodes, {steps_total} steps).",
                f"- Plans: {config.num_tokens} tokens x {config.frame_stack} steps; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters.",
                f"- Training: {result.step} steps of batch {cfg.batch_size}, {result.seconds / 3600:.2f} h on {hardware_description(accelerator)}.",
                f"- Command: `{command}`" if command else "- Command: (not recorded)",
                "",
            ]
        )
        save_checkpoint(out / MODEL_DIR, model.to("cpu"), saved_config, files={"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)})
    return out / MODEL_DIR
