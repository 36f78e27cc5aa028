"""``worldsim train --model explorer``: GenEx's explorer in its two stages, as a task of the one loop.

Data: panoramic walks (``worldsim/MiniWorldPanorama-v0`` collected into Minari). A training example
is a panorama and the ``frames`` panoramas after it when every step between was a move forward
(turns need no model: they are rolls). The stages (``train.stage``):

* ``spatial``: one-frame clips, every parameter but the temporal transformer blocks trained (the
  image model; SVD's pretraining stands here), from scratch or, with ``train.base``, continuing a
  finished explorer (training longer than a shipped model without its run folder);
* ``temporal``: whole clips from ``train.base`` (the spatial stage's model), only the
  ``TemporalBasicTransformerBlock``s trained, as GenEx fine-tunes SVD.

``OUT/model`` is the finished model (``kind: panorama_explorer``).
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

from worldsim.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldsim.core.checkpoint_kinds import PANORAMA_EXPLORER, require_kind
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.models.panorama_explorer import START_PANORAMAS_FILE, ExplorerConfig, PanoramaExplorer, temporal_parameters
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"
MOVE_FORWARD = 2  # worldsim/MiniWorldPanorama-v0's action
STAGES = ("spatial", "temporal")


@dataclass
class ExplorerTraining(DatasetTraining):
    """``configs/train/explorer-*.yaml``."""

    stage: str = "spatial"
    base: str | None = None  # start from this model: the spatial stage's OUT/model (temporal; required), any explorer (spatial)
    start_panoramas: int = 64  # real first panoramas of training episodes, for the env's reset


def start_panoramas(windows: SequenceDataset, count: int, seed: int) -> bytes:
    """The first panoramas of ``count`` training episodes (drawn with ``seed``), as ``START_PANORAMAS_FILE``'s bytes."""
    import io

    chosen = np.random.default_rng(seed).permutation(len(windows.episodes))[:count]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, panoramas=np.stack([windows.episodes[i].frames[0] for i in sorted(chosen)]))
    return buffer.getvalue()


class ExplorerObjective(nn.Module):
    def __init__(self, model: PanoramaExplorer):
        super().__init__()
        self.model = model

    def forward(self, clips: torch.Tensor, panorama: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"denoising": self.model.loss(clips, panorama)}


class ForwardWalks(torch.utils.data.Dataset):
    """Windows of ``frames + 1`` panoramas of one episode joined by moves forward only."""

    def __init__(self, windows: SequenceDataset):
        self.windows = windows
        starts = windows.windows
        self.indices = np.array(
            [
                i
                for i, (episode, start) in enumerate(starts)
                if (windows.episodes[episode].actions[start + 1 : start + windows.length] == MOVE_FORWARD).all()
            ],
            np.int64,
        )
        if len(self.indices) == 0:
            raise WorldsimError(
                f"no {windows.length - 1} moves forward in a row in {', '.join(windows.dataset_ids)}: collect walks with longer moves, or train on shorter clips"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"frames": self.windows[int(self.indices[index])]["frames"]}


class ExplorerTask:
    name = "explorer"

    def __init__(self, objective: ExplorerObjective, saved_config: dict[str, Any], dataset: ForwardWalks):
        self.objective, self.saved_config, self.dataset = objective, saved_config, dataset

    def accepts(self, saved: dict[str, Any]) -> bool:
        """Whether a run folder's config is this one's: its explorer config is read by today's code
        (a field added since it was saved takes its default) before comparing."""
        try:
            explorer = to_dict(from_dict(ExplorerConfig, saved["explorer"], where="saved explorer"))
        except (KeyError, TypeError, ValueError, WorldsimError):
            return False
        return {**saved, "explorer": explorer} == self.saved_config

    def sampler(self, num_samples: int, generator: torch.Generator) -> RandomSampler:
        return RandomSampler(self.dataset, replacement=True, num_samples=num_samples, generator=generator)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        frames = from_uint8(batch["frames"].to(device))  # float[B, 1 + F, C, H, W]
        return {"panorama": frames[:, 0], "clips": frames[:, 1:]}

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass  # measured on the finished model


def train_explorer(
    model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True
) -> Path:
    """Train (or resume) one stage of the panorama explorer; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(ExplorerTraining, train_values, where="train")
    if cfg.stage not in STAGES:
        raise WorldsimError(f"train.stage is {cfg.stage!r}: choose one of {', '.join(STAGES)}")
    if not cfg.datasets:
        raise WorldsimError("train.datasets is empty: name the Minari datasets of panoramic walks (worldsim/MiniWorldPanorama-v0)")
    if cfg.stage == "temporal" and not cfg.base:
        raise WorldsimError("train.stage=temporal fine-tunes a spatial stage: set train.base to its model folder (OUT/model)")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    config = from_dict(ExplorerConfig, {key: value for key, value in model_values.items() if key != "kind"}, where="model")
    model = PanoramaExplorer(config)
    if cfg.base:
        base = load_checkpoint(cfg.base)
        require_kind(base.config, PANORAMA_EXPLORER, base.path)
        # the noise is training's, not the weights'; a base saved before a field existed has its default
        base_config = from_dict(ExplorerConfig, base.config.get("explorer") or {}, where=f"{cfg.base} config")

        def architecture(explorer: ExplorerConfig) -> dict:
            return {key: value for key, value in to_dict(explorer).items() if key != "noise"}

        if architecture(base_config) != architecture(config):
            raise WorldsimError(f"train.base {cfg.base} is an explorer of another config: train its spatial stage with this model config")
        load_weights(model, base)
    temporal = {name for name, _ in temporal_parameters(model)}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_((name in temporal) == (cfg.stage == "temporal"))
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.datasets]
    clip_frames = 1 if cfg.stage == "spatial" else config.frames
    walks = ForwardWalks(SequenceDataset(datasets, clip_frames + 1))
    height, width = walks.windows.episodes[0].frames.shape[1:3]
    if (height, width) != (config.image_height, config.image_width):
        raise WorldsimError(
            f"the datasets' panoramas are {height}x{width}, model.image_height/width say {config.image_height}x{config.image_width}"
        )
    saved_config = {"kind": PANORAMA_EXPLORER, "explorer": to_dict(config), "stage": cfg.stage, "datasets": sorted(cfg.datasets)}
    task = ExplorerTask(ExplorerObjective(model), saved_config, walks)
    result = train_with_tensorboard(task, cfg, out, f"explorer-{cfg.stage}", accelerator, seed=cfg.seed, progress=progress)
    if not accelerator.is_main_process:
        return out / MODEL_DIR
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    card = "\n".join(
        [
            "# Panorama explorer model card",
            "",
            (
                f"- diffusers' UNetSpatioTemporalConditionModel, blocks {list(config.block_channels)}, space-to-depth {config.space_to_depth}, "
                f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; this stage trained {trained / 1e6:.2f} M ({cfg.stage})."
            ),
            (
                f"- From one {config.image_height}x{config.image_width} panorama, the panoramas after 1..{config.frames} moves forward; "
                f"spherical-consistency weight {config.noise.spherical_weight}."
            ),
            f"- Data: {', '.join(cfg.datasets)} ({len(walks)} walks of {clip_frames} moves forward).",
            f"- Training: {result.step} steps of batch {cfg.batch_size}, {result.seconds / 3600:.2f} h ({result.cpu_seconds / 60:.1f} CPU-minutes) "
            f"on {hardware_description(accelerator)}" + (f", from {cfg.base}." if cfg.base else "."),
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    files = {
        "README.md": card,
        "training_config.json": json.dumps(to_dict(cfg), indent=2),
        START_PANORAMAS_FILE: start_panoramas(walks.windows, cfg.start_panoramas, cfg.seed),
    }
    save_checkpoint(out / MODEL_DIR, model.to("cpu"), saved_config, files=files)
    return out / MODEL_DIR
