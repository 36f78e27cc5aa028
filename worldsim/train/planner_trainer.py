"""``worldsim train --model df-<maze>``: the diffusion-forcing planner's training loop.

Windows of ``num_tokens * frame_stack`` steps inside the episodes of PointMaze datasets (written
by ``worldsim collect`` with the waypoint expert), each token noised to its own level
(``DiffusionForcing.loss``), AdamW with warm-up, gradient clipping, EMA weights, through
``accelerate``. The output folder has the same layout as the world model's: ``checkpoint/``
(resumable, rewritten atomically), ``model/`` (the finished planner with its model card),
``tensorboard/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from worldsim.data.minari_io import load_dataset
from worldsim.data.trajectories import TrajectoryWindows
from worldsim.errors import WorldsimError
from worldsim.models.trajectory_model import PLANNER_KIND, TrajectoryModelConfig, build_trajectory_model
from worldsim.train.checkpoint import save_checkpoint
from worldsim.train.resumable import (
    ema_weights,
    hardware_description,
    optimizer_step,
    resume,
    save_resumable,
    tensorboard_writer,
    training_objects,
)

CHECKPOINT_DIR, MODEL_DIR = "checkpoint", "model"


def train_planner(model_values: dict[str, Any], cfg: dict[str, Any], out: str | Path, *, command: str = "", progress: bool = True) -> Path:
    """Train (or resume) a diffusion-forcing planner; returns the finished ``out/model`` folder."""
    from worldsim.envs import POINTMAZE_IDS

    out = Path(out)
    accelerator = Accelerator(mixed_precision=cfg["mixed_precision"], cpu=not torch.cuda.is_available())
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    set_seed(cfg["seed"])
    values = {key: value for key, value in model_values.items() if key != "kind"}
    maze = values.get("maze")
    if maze not in POINTMAZE_IDS:
        raise WorldsimError(f"unknown maze {maze!r} in the planner config: choose one of {', '.join(POINTMAZE_IDS)}")
    datasets = [load_dataset(dataset_id) for dataset_id in cfg["datasets"]]
    for dataset in datasets:
        env_id = dataset.spec.env_spec.id if dataset.spec.env_spec is not None else None
        if env_id != POINTMAZE_IDS[maze]:
            raise WorldsimError(
                f"dataset {dataset.id} was collected in {env_id}, not {POINTMAZE_IDS[maze]}: train the {maze} planner on {maze} data"
            )
    windows = TrajectoryWindows(datasets, int(values.get("num_tokens", 16)), int(values.get("frame_stack", 8)))
    config = TrajectoryModelConfig.from_dict({**values, "normalizer": windows.normalizer.to_dict()})
    saved_config = {"kind": PLANNER_KIND, "planner": config.to_dict()}

    model = build_trajectory_model(config)
    optimizer, lr_schedule, ema = training_objects(model, cfg)
    step, elapsed = 0, 0.0
    if (out / CHECKPOINT_DIR).is_dir():
        step, elapsed = resume(out / CHECKPOINT_DIR, model, optimizer, lr_schedule, ema, saved_config)
        accelerator.print(f"resuming {out / CHECKPOINT_DIR} at step {step}")
    if step >= cfg["steps"] and (out / MODEL_DIR).is_dir():
        return out / MODEL_DIR
    generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
    sampler = RandomSampler(windows, replacement=True, num_samples=max(cfg["steps"] - step, 1) * cfg["batch_size"], generator=generator)
    loader = DataLoader(windows, batch_size=cfg["batch_size"], sampler=sampler, drop_last=True)
    model, optimizer, loader, lr_schedule = accelerator.prepare(model, optimizer, loader, lr_schedule)
    ema.to(accelerator.device)

    writer = tensorboard_writer(out) if accelerator.is_main_process else None
    bar = tqdm(total=cfg["steps"], initial=step, disable=not (progress and accelerator.is_main_process), desc="train", unit="step")
    started = time.perf_counter() - elapsed
    model.train()
    for batch in loader if step < cfg["steps"] else ():
        with accelerator.autocast():
            loss = model(batch)
        if not torch.isfinite(loss):
            raise WorldsimError(f"training diverged at step {step} (loss {loss.item()}): lower optimizer.lr")
        accelerator.backward(loss)
        optimizer_step(accelerator, model, optimizer, lr_schedule, ema, cfg["optimizer"]["grad_clip"])
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if writer is not None and step % cfg["log_every"] == 0:
            writer.add_scalar("loss/diffusion_forcing", loss.item(), step)
        is_last = step >= cfg["steps"]
        if accelerator.is_main_process and (step % cfg["checkpoint_every"] == 0 or is_last):
            save_resumable(
                out / CHECKPOINT_DIR,
                accelerator.unwrap_model(model),
                optimizer,
                lr_schedule,
                ema,
                saved_config,
                step,
                time.perf_counter() - started,
            )
        if is_last:
            break
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        elapsed = time.perf_counter() - started
        hardware = hardware_description(accelerator)
        steps_total = sum(len(ep) for ep in windows.episodes)
        card = "\n".join(
            [
                f"# Diffusion-forcing planner card: PointMaze {maze}",
                "",
                f"- Data: {', '.join(windows.dataset_ids)} ({len(windows.episodes)} episodes, {steps_total} steps).",
                f"- Plans: {config.num_tokens} tokens x {config.frame_stack} steps; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters.",
                f"- Training: {step} steps of batch {cfg['batch_size']}, {elapsed / 3600:.2f} h on {hardware}.",
                f"- Command: `{command}`" if command else "- Command: (not recorded)",
                "",
            ]
        )
        with ema_weights(ema, accelerator.unwrap_model(model)) as ema_model:
            save_checkpoint(
                out / MODEL_DIR, ema_model, saved_config, files={"README.md": card, "training_config.json": json.dumps(cfg, indent=2)}
            )
    if writer is not None:
        writer.close()
    return out / MODEL_DIR
