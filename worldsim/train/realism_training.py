"""``worldsim train --model realism-mario``: the realism critic as a task of the one loop.

Each batch is a set of real windows (K context frames + the real next frame, actions balanced); the
world model dreams the next frame from the same real context under the recorded action, so every
real step has a dreamed twin on the same scene. The critic (``worldsim.rewards.realism``) learns
real vs dreamed with binary cross-entropy on its logit. The dreams come from the world model the
critic will score (``train.world_model``, default the shipped one), whose fingerprint the critic
records. ``OUT/model`` is the finished critic; its card gives its accuracy on held-out real steps
(``train.heldout``, another policy's episodes) and on their dreamed twins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldsim.core.checkpoint import save_checkpoint, shipped_checkpoint
from worldsim.core.checkpoint_kinds import REALISM_CRITIC
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.models.lora import weights_fingerprint
from worldsim.models.world_model import WorldModel, load_world_model
from worldsim.rewards.realism import RealismCritic, RealismCriticConfig
from worldsim.train.loop import DatasetTraining, hardware_description, start_accelerator, train_with_tensorboard

MODEL_DIR = "model"
SHIPPED_WORLD_MODEL = "mario-v0"


@dataclass
class RealismTraining(DatasetTraining):
    """``datasets``: real episodes (the world model's training data)."""

    heldout: str | None = None  # another policy's real episodes, for the card's accuracy
    heldout_windows: int = 512
    world_model: str | None = None  # the world model whose dreams are the negatives; None: the shipped one
    sampling_steps: int | None = None  # None: the world model's own sampler
    balance_actions: bool = True


class RealismObjective(nn.Module):
    """Binary cross-entropy of the critic on real steps (label 1) and their dreamed twins (label 0)."""

    def __init__(self, critic: RealismCritic):
        super().__init__()
        self.critic = critic

    def forward(self, previous: torch.Tensor, real: torch.Tensor, dreamed: torch.Tensor) -> dict[str, torch.Tensor]:
        real_logits, dreamed_logits = self.critic(previous, real), self.critic(previous, dreamed)
        bce = nn.functional.binary_cross_entropy_with_logits
        return {"real": bce(real_logits, torch.ones_like(real_logits)), "dreamed": bce(dreamed_logits, torch.zeros_like(dreamed_logits))}


def dreamed_twins(
    world_model: WorldModel, frames: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The next frame dreamed from each window's context: ``frames float[B, K + 1, C, H, W]``,
    ``actions int64[B, K + 1]`` (``actions[:, i]`` produced ``frames[:, i]``) -> ``float[B, C, H, W]``."""
    k = world_model.context_length
    with torch.no_grad():
        return world_model.sampler.sample(world_model.denoiser, frames[:, :k], actions[:, 1:], generator=generator)


class RealismTask:
    name = "realism_critic"

    def __init__(
        self, objective: RealismObjective, saved_config: dict, windows: SequenceDataset, world_model: WorldModel, cfg: RealismTraining
    ):
        self.objective, self.saved_config, self.dataset = objective, saved_config, windows
        self.world_model, self.cfg = world_model, cfg
        self.generator: torch.Generator | None = None

    def sampler(self, num_samples: int, generator: torch.Generator):
        return self.dataset.weighted_sampler(num_samples, generator, balance_actions=self.cfg.balance_actions)

    def to_batch(self, batch, device) -> dict[str, torch.Tensor]:
        if self.generator is None or self.generator.device != torch.device(device):
            self.generator = torch.Generator(device).manual_seed(self.cfg.seed)
        self.world_model.to(device)
        frames, actions = from_uint8(batch["frames"].to(device)), batch["actions"].to(device)
        k = self.world_model.context_length
        return {
            "previous": frames[:, k - 1],
            "real": frames[:, k],
            "dreamed": dreamed_twins(self.world_model, frames, actions, self.generator),
        }

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        pass


@torch.no_grad()
def heldout_accuracy(
    critic: RealismCritic, world_model: WorldModel, windows: SequenceDataset, count: int, seed: int, batch_size: int = 64
) -> dict[str, float]:
    """The critic's accuracy on ``count`` held-out real steps (logit > 0) and on their dreamed twins
    (logit < 0), with the mean logits."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(windows), size=min(count, len(windows)), replace=False)
    generator = torch.Generator().manual_seed(seed)
    k = world_model.context_length
    real_logits, dreamed_logits = [], []
    for start in range(0, len(chosen), batch_size):
        items = [windows[int(i)] for i in chosen[start : start + batch_size]]
        frames = from_uint8(torch.stack([item["frames"] for item in items]))
        actions = torch.stack([item["actions"] for item in items])
        real_logits.append(critic(frames[:, k - 1], frames[:, k]))
        dreamed_logits.append(critic(frames[:, k - 1], dreamed_twins(world_model, frames, actions, generator)))
    real, dreamed = torch.cat(real_logits), torch.cat(dreamed_logits)
    return {
        "steps": len(chosen),
        "real_accuracy": float((real > 0).float().mean()),
        "dreamed_accuracy": float((dreamed < 0).float().mean()),
        "real_logit": float(real.mean()),
        "dreamed_logit": float(dreamed.mean()),
    }


def train_realism_critic(
    model_values: dict[str, Any], train_values: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True
) -> Path:
    """Train (or resume) the critic; returns ``out/model``."""
    out = Path(out)
    cfg = from_dict(RealismTraining, train_values, where="train")
    if not cfg.datasets:
        raise WorldsimError("train.datasets is empty: name the Minari datasets of real episodes to train the critic on")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    world_model_path = Path(cfg.world_model) if cfg.world_model else shipped_checkpoint(SHIPPED_WORLD_MODEL)
    world_model, _, _ = load_world_model(world_model_path)
    if cfg.sampling_steps is not None:  # dream as the env will with sampling_steps=N
        world_model.use_sampling_steps(cfg.sampling_steps)
    world_model.requires_grad_(False)
    values = {key: value for key, value in model_values.items() if key != "kind"}
    config = from_dict(RealismCriticConfig, values, where="model")
    k = world_model.context_length
    windows = SequenceDataset([load_dataset(dataset_id) for dataset_id in cfg.datasets], k + 1, pad_start=k - 1)
    saved_config = {
        "kind": REALISM_CRITIC,
        "critic": to_dict(config),
        "datasets": sorted(cfg.datasets),
        "world_model": {
            "path": str(world_model_path),
            "weights_sha256": weights_fingerprint(world_model),
            "sampling_steps": cfg.sampling_steps,
        },
    }
    critic = RealismCritic(config)
    task = RealismTask(RealismObjective(critic), saved_config, windows, world_model, cfg)
    result = train_with_tensorboard(task, cfg, out, "realism_critic", accelerator, seed=cfg.seed, progress=progress)
    if not accelerator.is_main_process:
        return out / MODEL_DIR
    critic, world_model = critic.to("cpu").eval(), world_model.to("cpu")
    heldout = None
    if cfg.heldout:
        heldout_windows = SequenceDataset(load_dataset(cfg.heldout), k + 1, pad_start=k - 1)
        heldout = heldout_accuracy(critic, world_model, heldout_windows, cfg.heldout_windows, cfg.seed)
    reads = f"- Reads (previous frame, next frame) at {config.image_size}x{config.image_size}"
    if config.blur or config.levels:  # blind to a sampler's faint grain
        reads += f", degraded (blur {config.blur} px, {config.levels or 256} levels per channel)"
    card = "\n".join(
        [
            "# Realism critic card",
            "",
            f"{reads}; logit > 0: a real step, < 0: a dreamed one.",
            f"- Real steps: {', '.join(cfg.datasets)}, actions balanced; dreamed twins: {world_model_path} from the same contexts and actions.",
            f"- Training: {result.step} steps of batch {cfg.batch_size} (each a real and a dreamed step), {result.seconds / 3600:.2f} h on {hardware_description(accelerator)}.",
            (
                f"- Held-out ({cfg.heldout}, {heldout['steps']} steps): real recognised {heldout['real_accuracy']:.3f}, dreamed recognised "
                f"{heldout['dreamed_accuracy']:.3f}; mean logit real {heldout['real_logit']:+.2f}, dreamed {heldout['dreamed_logit']:+.2f}."
                if heldout
                else "- Held-out: not measured (train.heldout is null)."
            ),
            f"- Command: `{command}`" if command else "- Command: (not recorded)",
            "",
        ]
    )
    files = {"README.md": card, "training_config.json": json.dumps(to_dict(cfg), indent=2)}
    save_checkpoint(out / MODEL_DIR, critic, saved_config | ({"heldout": heldout} if heldout else {}), files=files)
    return out / MODEL_DIR
