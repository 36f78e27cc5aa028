"""``worldsim train``: the world model's training loop, from Minari datasets to a checkpoint folder.

One path, CleanRL style: load the datasets -> windows of ``K + U`` steps inside episodes, drawn
action-balanced -> ``WorldModel.forward`` (denoiser loss with a U-step autoregressive unroll, heads
losses) -> AdamW with warm-up and gradient clipping -> EMA of the weights.

``accelerate`` places everything on the device (CUDA when present), runs mixed precision on GPUs
and, under ``accelerate launch``, data-parallel training on several of them.

The output folder holds

* ``checkpoint/``: resumable (EMA weights as ``model.safetensors``, plus raw weights, optimizer,
  step and elapsed time), rewritten atomically every ``checkpoint_every`` steps; running the same
  command again resumes from it;
* ``model/``: the finished model, ready for ``gym.make("worldsim/Mario-v0", checkpoint=...)``
  (EMA weights, ``config.json``, ``start_states.npz``, a ``README.md`` model card);
* ``curve.csv``: held-out fidelity against training time; ``tensorboard/``: scalars and videos.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm

from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import LABEL_KEYS, model_batch
from worldsim.diffusion.sampler import to_uint8
from worldsim.errors import WorldsimError
from worldsim.eval import fidelity
from worldsim.models.world_model import (
    START_STATES_FILE,
    StartStates,
    WorldModel,
    WorldModelConfig,
)
from worldsim.train.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldsim.train.resumable import (
    ema_weights,
    hardware_description,
    optimizer_step,
    resume,
    save_resumable,
    tensorboard_writer,
    training_objects,
)

CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"
CURVE_FILE = "curve.csv"
CURVE_FIELDS = ("step", "hours", "teacher_forced_psnr", "autoregressive_psnr_8", "loss")


def train_world_model(
    model_config: dict[str, Any],
    train_config: dict[str, Any],
    out: str | Path,
    *,
    command: str = "",
    progress: bool = True,
) -> Path:
    """Train (or resume training) a world model; returns the finished ``out/model`` folder."""
    out = Path(out)
    cfg = train_config
    accelerator = Accelerator(mixed_precision=cfg["mixed_precision"], cpu=not torch.cuda.is_available())
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    set_seed(cfg["seed"])

    datasets = [load_dataset(dataset_id) for dataset_id in cfg["data"]["datasets"]]
    config = _model_config(model_config, datasets)
    k, unroll = config.context_length, int(cfg["unroll_steps"])
    if unroll < 1:
        raise WorldsimError(f"unroll_steps must be >= 1, got {unroll}")
    windows = SequenceDataset(datasets, k + unroll, LABEL_KEYS, pad_start=k - 1)
    heldout = _heldout_batches(cfg, k) if cfg["data"].get("heldout") else None

    model = WorldModel(config)
    optimizer, lr_schedule, ema = training_objects(model, cfg)
    step, elapsed = 0, 0.0
    if (out / CHECKPOINT_DIR).is_dir():
        step, elapsed = resume(out / CHECKPOINT_DIR, model, optimizer, lr_schedule, ema, {"model": config.to_dict()})
        accelerator.print(f"resuming {out / CHECKPOINT_DIR} at step {step}")
    if step >= cfg["steps"] and (out / MODEL_DIR).is_dir():
        return out / MODEL_DIR

    # A fresh draw of windows per (seed, step): a resumed run does not replay the batches it saw.
    generator = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + step)
    remaining = max(cfg["steps"] - step, 1) * cfg["batch_size"]  # at least one batch: samplers refuse zero
    if cfg["data"]["balance_actions"]:
        sampler = windows.action_balanced_sampler(remaining, generator, end_weight=cfg["data"]["end_weight"])
    else:
        sampler = torch.utils.data.RandomSampler(windows, replacement=True, num_samples=remaining, generator=generator)
    loader = DataLoader(windows, batch_size=cfg["batch_size"], sampler=sampler, drop_last=True)
    model, optimizer, loader, lr_schedule = accelerator.prepare(model, optimizer, loader, lr_schedule)
    ema.to(accelerator.device)
    class_weights = torch.tensor(cfg["end_class_weights"], dtype=torch.float32, device=accelerator.device)
    weights = cfg["loss_weights"]

    writer = tensorboard_writer(out) if accelerator.is_main_process else None
    bar = tqdm(
        total=cfg["steps"],
        initial=step,
        disable=not (progress and accelerator.is_main_process),
        desc="train",
        unit="step",
    )
    started, last_loss = time.perf_counter() - elapsed, float("nan")
    last_log = time.perf_counter()
    model.train()
    for batch in loader if step < cfg["steps"] else ():
        inputs = model_batch(batch, accelerator.device)
        with accelerator.autocast():
            losses = model(**inputs, end_class_weights=class_weights)
            loss = sum(weights[name] * value for name, value in losses.items())
        if not torch.isfinite(loss):
            raise WorldsimError(f"training diverged at step {step} (loss {loss.item()}): lower optimizer.lr or check the data")
        accelerator.backward(loss)
        grad_norm = optimizer_step(accelerator, model, optimizer, lr_schedule, ema, cfg["optimizer"]["grad_clip"])
        step += 1
        last_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}", denoiser=f"{losses['denoiser'].item():.4f}")

        if writer is not None and step % cfg["log_every"] == 0:
            for name, value in losses.items():
                writer.add_scalar(f"loss/{name}", value.item(), step)
            writer.add_scalar("loss/total", last_loss, step)
            writer.add_scalar("train/grad_norm", float(grad_norm), step)
            writer.add_scalar("train/lr", lr_schedule.get_last_lr()[0], step)
            now = time.perf_counter()
            writer.add_scalar("train/steps_per_second", cfg["log_every"] / (now - last_log), step)
            last_log = now
        is_last = step >= cfg["steps"]
        if accelerator.is_main_process and (step % cfg["checkpoint_every"] == 0 or is_last):
            save_resumable(
                out / CHECKPOINT_DIR,
                accelerator.unwrap_model(model),
                optimizer,
                lr_schedule,
                ema,
                {"model": config.to_dict()},
                step,
                time.perf_counter() - started,
            )
        if accelerator.is_main_process and heldout is not None and (step % cfg["eval_every"] == 0 or is_last):
            with ema_weights(ema, accelerator.unwrap_model(model)) as ema_model:
                _record_fidelity(
                    out,
                    ema_model,
                    heldout,
                    step,
                    time.perf_counter() - started,
                    last_loss,
                    writer,
                )
                if step % cfg["sample_every"] == 0 or is_last:
                    _log_video(out, writer, ema_model, heldout, step)
        if is_last:
            break
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        elapsed = time.perf_counter() - started
        with ema_weights(ema, accelerator.unwrap_model(model)) as ema_model:
            heads_steps, heads_seconds = _finetune_heads(out, ema_model, windows, cfg, class_weights, accelerator.device, progress, writer)
            _export(out, ema_model, config, windows, cfg, step, elapsed, heads_steps, heads_seconds, command, accelerator)
    if writer is not None:
        writer.close()
    return out / MODEL_DIR


def _model_config(values: dict[str, Any], datasets) -> WorldModelConfig:
    spaces = {(str(d.spec.observation_space), str(d.spec.action_space)) for d in datasets}
    if len(spaces) > 1:
        raise WorldsimError(f"datasets {[d.id for d in datasets]} have different observation or action spaces: train on one env's data")
    observation_space, action_space = (
        datasets[0].spec.observation_space,
        datasets[0].spec.action_space,
    )
    if len(observation_space.shape) != 3 or not hasattr(action_space, "n"):
        raise WorldsimError(
            f"dataset {datasets[0].id} has {observation_space} / {action_space}: the world model needs image observations and discrete actions"
        )
    height, width, channels = observation_space.shape
    if height != width or values.get("image_size", height) != height:
        raise WorldsimError(f"dataset frames are {height}x{width}; the model config says image_size {values.get('image_size')}")
    env_spec = datasets[0].spec.env_spec
    real_env = {"id": env_spec.id, "kwargs": dict(env_spec.kwargs)} if env_spec is not None else {}
    meanings = []
    if env_spec is not None and env_spec.id == "worldsim/MarioReal-v0":
        from worldsim.envs.real.mario import ACTION_SETS

        meanings = [" ".join(buttons) or "NOOP" for buttons in ACTION_SETS[env_spec.kwargs.get("action_set", "simple")]]
    return WorldModelConfig.from_dict(
        {
            **values,
            "num_actions": int(action_space.n),
            "image_size": height,
            "image_channels": channels,
            "real_env": real_env,
            "action_meanings": meanings,
        }
    )


def _heldout_batches(cfg: dict[str, Any], k: int) -> dict[str, Any]:
    """Fixed held-out windows: K+1 frames for teacher forcing, K+8 for 8-step rollouts."""
    dataset = load_dataset(cfg["data"]["heldout"])
    rng = np.random.default_rng(12345)
    batches = {}
    for name, horizon in (("teacher", 1), ("rollout", 8)):
        windows = SequenceDataset(dataset, k + horizon, LABEL_KEYS)
        count = cfg["eval_windows"] if horizon == 1 else max(cfg["eval_windows"] // 4, 1)
        chosen = rng.choice(len(windows), size=min(count, len(windows)), replace=False)
        items = [windows[int(i)] for i in chosen]
        batches[name] = model_batch({key: torch.stack([item[key] for item in items]) for key in items[0]})
    return batches


def _record_fidelity(
    out: Path,
    model: WorldModel,
    heldout,
    step: int,
    elapsed: float,
    loss: float,
    writer,
) -> None:
    device = next(model.parameters()).device
    on_device = {name: {key: value.to(device) for key, value in batch.items()} for name, batch in heldout.items()}
    generator = torch.Generator(device).manual_seed(0)
    model.eval()
    teacher = fidelity.teacher_forced(model, [on_device["teacher"]], generator)
    curve = fidelity.autoregressive(model, [on_device["rollout"]], 8, generator)
    model.train()
    row = {
        "step": step,
        "hours": round(elapsed / 3600, 4),
        "teacher_forced_psnr": round(float(teacher["psnr"].mean()), 3),
        "autoregressive_psnr_8": round(float(curve[:, 7].mean()), 3),
        "loss": round(loss, 5),
    }
    file = out / CURVE_FILE
    rows = [r for r in _read_curve(file) if int(r["step"]) < step] + [row]  # a resumed run rewrites its future
    tmp = file.with_name(f".{file.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer_csv = csv.DictWriter(handle, CURVE_FIELDS)
        writer_csv.writeheader()
        writer_csv.writerows(rows)
    tmp.replace(file)
    if writer is not None:
        writer.add_scalar("fidelity/teacher_forced_psnr", row["teacher_forced_psnr"], step)
        writer.add_scalar("fidelity/autoregressive_psnr_8", row["autoregressive_psnr_8"], step)


def _read_curve(file: Path) -> list[dict[str, str]]:
    if not file.is_file():
        return []
    with file.open() as handle:
        return list(csv.DictReader(handle))


def _log_video(out: Path, writer, model: WorldModel, heldout, step: int) -> None:
    """Real (top) and dreamed (bottom) 8-step rollouts of 4 held-out windows, side by side: an mp4
    in ``out/samples/`` and the frames in tensorboard (whose own video encoder needs moviepy 1.x)."""
    from worldsim.video import write_video

    device = next(model.parameters()).device
    batch = {key: value[:4].to(device) for key, value in heldout["rollout"].items()}
    model.eval()
    generated, _ = fidelity.rollout(
        model,
        batch["frames"],
        batch["actions"],
        8,
        torch.Generator(device).manual_seed(0),
    )
    model.train()
    real = batch["frames"][:, -8:]
    grid = torch.cat([torch.cat(list(real), dim=-1), torch.cat(list(generated), dim=-1)], dim=-2)  # T, C, 2H, 4W
    frames = to_uint8(grid).cpu().numpy()  # T, 2H, 4W, C
    (out / "samples").mkdir(exist_ok=True)
    write_video(
        list(frames.repeat(4, axis=1).repeat(4, axis=2)),
        out / "samples" / f"step_{step:07d}.mp4",
        fps=4,
    )
    if writer is not None:
        writer.add_images(
            "samples/real_top_dream_bottom",
            torch.from_numpy(frames),
            step,
            dataformats="NHWC",
        )


def start_states(windows: SequenceDataset, count: int, seed: int) -> StartStates:
    """The first frames of up to ``count`` training episodes, each as a K-frame context (the first
    frame repeated, action 0): what a real env's ``reset`` shows, in the form the model learned
    from padded windows."""
    k = windows.pad_start + 1
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(windows.episodes), size=min(count, len(windows.episodes)), replace=False)
    episodes = [windows.episodes[i] for i in sorted(chosen)]
    frames = np.stack([np.repeat(episode.frames[:1], k, axis=0) for episode in episodes])
    x_pos = np.array([float(episode.labels["x_pos"][0]) if "x_pos" in episode.labels else 0.0 for episode in episodes])
    return StartStates(frames, np.zeros(frames.shape[:2], np.int64), x_pos)


HEADS_DIR = "heads_checkpoint"


def _finetune_heads(out: Path, model: WorldModel, windows, cfg, class_weights, device, progress: bool, writer) -> tuple[int, float]:
    """Train the transition heads alone for ``heads_steps`` more steps, on real frames.

    The heads are a small CNN next to the denoiser; in the joint phase they see one batch per
    denoiser step, too few for rare events (a death is under 1% of steps). Here they train on
    larger batches for little time, the denoiser frozen. Resumable from ``out/heads_checkpoint``.
    Returns the steps done and their seconds.
    """
    total = int(cfg.get("heads_steps", 0))
    if total <= 0:
        return 0, 0.0
    heads = model.heads
    optimizer = torch.optim.AdamW(heads.parameters(), lr=cfg["heads_lr"], weight_decay=cfg["optimizer"]["weight_decay"])
    step, elapsed = 0, 0.0
    if (out / HEADS_DIR).is_dir():
        saved = load_checkpoint(out / HEADS_DIR)
        load_weights(heads, saved)
        optimizer.load_state_dict(saved.optimizer_state)
        step, elapsed = int(saved.training_state["step"]), float(saved.training_state["elapsed_seconds"])
    if step >= total:
        return step, elapsed
    generator = torch.Generator().manual_seed(cfg["seed"] * 7_919 + step)
    sampler = windows.action_balanced_sampler((total - step) * cfg["heads_batch_size"], generator, end_weight=cfg["data"]["end_weight"])
    loader = DataLoader(windows, batch_size=cfg["heads_batch_size"], sampler=sampler, drop_last=True)
    started = time.perf_counter() - elapsed
    bar = tqdm(total=total, initial=step, disable=not progress, desc="heads", unit="step")
    heads.train()
    for batch in loader:
        inputs = model_batch(batch, device)
        losses = model.heads_losses(**inputs, end_class_weights=class_weights)
        loss = sum(cfg["loss_weights"][name] * value for name, value in losses.items())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(heads.parameters(), cfg["optimizer"]["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        bar.set_postfix(end=f"{losses['end'].item():.4f}")
        if writer is not None and step % cfg["log_every"] == 0:
            for name, value in losses.items():
                writer.add_scalar(f"heads_finetune/{name}", value.item(), step)
        if step % cfg["checkpoint_every"] == 0 or step >= total:
            state = {"step": step, "elapsed_seconds": time.perf_counter() - started}
            save_checkpoint(out / HEADS_DIR, heads, {"heads_of": str(out / CHECKPOINT_DIR)}, optimizer=optimizer, training_state=state)
        if step >= total:
            break
    bar.close()
    heads.eval()
    return step, time.perf_counter() - started


def _export(
    out: Path,
    model: WorldModel,
    config: WorldModelConfig,
    windows,
    cfg,
    step: int,
    elapsed: float,
    heads_steps: int,
    heads_seconds: float,
    command: str,
    accelerator,
) -> None:
    report = _read_curve(out / CURVE_FILE)
    card = model_card(config, cfg, windows, step, elapsed, heads_steps, heads_seconds, command, accelerator, report[-1] if report else None)
    save_checkpoint(
        out / MODEL_DIR,
        model,
        {"model": config.to_dict()},
        files={
            START_STATES_FILE: start_states(windows, cfg["start_states"], cfg["seed"]).save_bytes(),
            "README.md": card,
            "training_config.json": json.dumps(cfg, indent=2),
        },
    )


def model_card(
    config: WorldModelConfig,
    cfg,
    windows: SequenceDataset,
    step: int,
    elapsed: float,
    heads_steps: int,
    heads_seconds: float,
    command: str,
    accelerator,
    last_eval,
) -> str:
    """A first model card: data, steps, time, hardware, command, the last held-out fidelity."""
    hardware = hardware_description(accelerator)
    frames = sum(len(ep.frames) for ep in windows.episodes)
    lines = [
        "# World model card",
        "",
        (
            f"- Data: {', '.join(windows.dataset_ids)} ({len(windows.episodes)} episodes, {frames} frames), windows of "
            f"{config.context_length} + {cfg['unroll_steps']} steps inside episodes, action-balanced: {cfg['data']['balance_actions']}."
        ),
        f"- Training: {step} steps of batch {cfg['batch_size']}, {elapsed / 3600:.2f} h on {hardware} ({accelerator.num_processes} process(es)).",
        f"- Heads fine-tuning: {heads_steps} steps of batch {cfg.get('heads_batch_size')}, {heads_seconds / 3600:.2f} h."
        if heads_steps
        else "- Heads fine-tuning: none.",
        f"- Command: `{command}`" if command else "- Command: (not recorded)",
        f"- Parameters: {sum(p.numel() for p in WorldModel(config).parameters()) / 1e6:.2f}M; sampler {config.sampler.num_steps} Euler steps.",
    ]
    if last_eval:
        lines.append(
            f"- Held-out ({cfg['data']['heldout']}, {cfg['eval_windows']} windows) at step {last_eval['step']}: teacher-forced PSNR "
            f"{last_eval['teacher_forced_psnr']} dB, 8-step autoregressive PSNR {last_eval['autoregressive_psnr_8']} dB."
        )
    return "\n".join(lines) + "\n"


__all__ = ["model_card", "start_states", "train_world_model"]
