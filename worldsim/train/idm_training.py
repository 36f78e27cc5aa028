"""``worldsim train --model idm-mario``: the inverse-dynamics probe as a task of the one loop.

Windows of ``frames`` real steps (episode starts padded), drawn so that every action is the label
equally often; cross-entropy on the action of the last step. ``OUT/model`` is the finished probe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.models.inverse_dynamics import IDM_KIND, InverseDynamicsConfig, InverseDynamicsModel
from worldsim.train.loop import LoopConfig, hardware_description, tensorboard_writer, train

MODEL_DIR = "model"


@dataclass
class InverseDynamicsTraining(LoopConfig):
    datasets: list[str] = field(default_factory=list)
    mixed_precision: str = "no"
    threads: int | None = None
    seed: int = 0


class InverseDynamicsObjective(nn.Module):
    def __init__(self, model: InverseDynamicsModel):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"action": nn.functional.cross_entropy(self.model(frames), actions)}


class InverseDynamicsTask:
    name = "inverse_dynamics"

    def __init__(self, objective, saved_config, windows: SequenceDataset):
        self.objective, self.saved_config, self.dataset = objective, saved_config, windows

    def sampler(self, num_samples: int, generator: torch.Generator):
        return self.dataset.weighted_sampler(num_samples, generator, balance_actions=True)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        return {"frames": from_uint8(batch["frames"].to(device)), "actions": batch["actions"][:, -1].to(device)}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass


def train_inverse_dynamics(model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True) -> Path:
    """Train (or resume) the probe on real episodes; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(InverseDynamicsTraining, train_values, where="train")
    if not cfg.datasets:
        raise WorldsimError("train.datasets is empty: name the Minari datasets of real episodes to train the probe on")
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    set_seed(cfg.seed)
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.datasets]
    values = {key: value for key, value in model_values.items() if key != "kind"}
    config = from_dict(InverseDynamicsConfig, {**values, "num_actions": int(datasets[0].spec.action_space.n)}, where="model")
    windows = SequenceDataset(datasets, config.frames, pad_start=config.frames - 2)
    saved_config = {"kind": IDM_KIND, "inverse_dynamics": to_dict(config), "datasets": sorted(cfg.datasets)}
    model = InverseDynamicsModel(config)
    writer = tensorboard_writer(out) if accelerator.is_main_process else None
    result = train(InverseDynamicsTask(InverseDynamicsObjective(model), saved_config, windows), cfg, out / "inverse_dynamics", accelerator,
                   seed=cfg.seed, writer=writer, progress=progress)  # fmt: skip
    if writer is not None:
        writer.close()
    card = "\n".join(
        [
            "# Inverse-dynamics probe card",
            "",
            f"- Reads {config.frames} consecutive frames, classifies the last step's action ({config.num_actions} actions).",
            f"- Data: {', '.join(cfg.datasets)} (real episodes), action-balanced.",
            f"- Training: {result.step} steps of batch {cfg.batch_size}, {result.seconds / 3600:.2f} h on {hardware_description(accelerator)}.",
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    save_checkpoint(out / MODEL_DIR, model.to("cpu"), saved_config, files={"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)})
    return out / MODEL_DIR
