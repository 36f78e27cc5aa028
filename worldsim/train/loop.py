"""worldsim's one training loop: every model (world-model denoiser, end model, maze planner) plugs in.

A ``TrainingTask`` brings what differs: its data (a dataset and how windows are drawn), its
objective (an ``nn.Module`` whose ``forward(**batch)`` returns named losses), the config its
checkpoint must match, and optionally an evaluation. ``train`` does the rest, once:

* ``accelerate``: device placement, mixed precision on GPUs, data-parallel training under
  ``accelerate launch`` (each process draws its own batches; gradients are averaged);
* AdamW, a constant learning rate after linear warm-up (diffusers' scheduler), gradient clipping,
  an EMA of the weights (diffusers' ``EMAModel``);
* a resumable checkpoint folder, rewritten atomically every ``checkpoint_every`` steps and at least
  every ``checkpoint_minutes``; running the same command again resumes from it, and a checkpoint
  written with another config is refused;
* tensorboard scalars (``<task>/<loss>``), a tqdm bar with the loss.

The checkpoint's ``model.safetensors`` holds the EMA weights (what inference loads); its training
files hold the raw weights, the optimizer, the schedule, the step and the elapsed wall and CPU time.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from worldsim.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldsim.errors import WorldsimError


@dataclass
class OptimizerConfig:
    lr: float = 3e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    grad_clip: float = 1.0


@dataclass
class LoopConfig:
    """What every training phase sets (a ``train:`` config section, or one phase of it)."""

    steps: int = 1000
    batch_size: int = 32
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    ema_decay: float = 0.999
    loss_weights: dict[str, float] = field(default_factory=dict)  # a loss not named here weighs 1
    log_every: int = 25
    checkpoint_every: int = 250
    checkpoint_minutes: float = 10.0  # a killed run loses at most this much work
    eval_every: int = 0  # 0: never (a task without evaluation ignores it)
    # Also stop once training has used this much CPU time (the process's, across resumes): compute-
    # matched comparisons that other jobs on the machine do not skew, as wall time would.
    max_cpu_minutes: float | None = None


@dataclass
class DatasetTraining(LoopConfig):
    """A one-network run's ``train:`` section: the loop's settings, the Minari datasets it trains on,
    and how the process runs (mixed precision, torch threads, seed). A task with more settings
    extends it."""

    datasets: list[str] = field(default_factory=list)
    mixed_precision: str = "no"
    threads: int | None = None
    seed: int = 0


class TrainingTask(Protocol):
    """What a model brings to ``train``."""

    name: str  # the checkpoint folder's name and the tensorboard prefix
    objective: torch.nn.Module  # forward(**batch) -> {loss name: scalar tensor}
    # optional on the objective: on_step(step), told before each step how many were taken (a schedule)
    saved_config: dict[str, Any]  # stored in the checkpoint; resuming with another is refused
    # optional: accepts(saved) -> bool, when a checkpoint's config may differ in form (not in
    # substance) from saved_config, e.g. written before a field with a default was added
    dataset: Dataset

    def sampler(self, num_samples: int, generator: torch.Generator) -> Sampler: ...

    def to_batch(self, batch: Any, device: torch.device) -> dict[str, Any]: ...

    def evaluate(self, objective: torch.nn.Module, step: int, hours: float, loss: float, writer) -> None: ...


@dataclass
class TrainingResult:
    step: int
    seconds: float  # wall time
    cpu_seconds: float = 0.0  # the process's CPU time


def start_accelerator(mixed_precision: str, threads: int | None, seed: int) -> Accelerator:
    """What every training command starts with: the accelerator (CUDA when present, else the CPU),
    torch's CPU threads, and every random seed (accelerate's ``set_seed``)."""
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())
    if threads:
        torch.set_num_threads(int(threads))
    set_seed(seed)
    return accelerator


def hardware_description(accelerator: Accelerator) -> str:
    """What a model card says the training ran on: the GPU's name, or the CPU and its torch threads."""
    device = accelerator.device
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads"


class ema_weights:
    """Context manager: the module with its EMA weights swapped in, restored on exit."""

    def __init__(self, ema: EMAModel, module: torch.nn.Module):
        self.ema, self.module = ema, module

    def __enter__(self) -> torch.nn.Module:
        self.ema.store(self.module.parameters())
        self.ema.copy_to(self.module.parameters())
        return self.module

    def __exit__(self, *exc) -> None:
        self.ema.restore(self.module.parameters())


def train(
    task: TrainingTask,
    cfg: LoopConfig,
    folder: Path,
    accelerator: Accelerator,
    *,
    seed: int = 0,
    writer=None,
    progress: bool = True,
) -> TrainingResult:
    """Train ``task`` to ``cfg.steps`` steps, resuming from ``folder`` if it holds a checkpoint.

    On return the task's objective holds the EMA weights, on ``accelerator.device``.
    """
    if cfg.max_cpu_minutes is not None and accelerator.num_processes > 1:
        # each process would measure its own CPU time and could stop at another step than the others
        raise WorldsimError("train.max_cpu_minutes works in one process only: set train.steps instead under accelerate launch")
    objective = task.objective
    settings = cfg.optimizer
    optimizer = torch.optim.AdamW(objective.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, betas=tuple(settings.betas))
    lr_schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=settings.warmup_steps)
    ema = EMAModel(objective.parameters(), decay=cfg.ema_decay, use_ema_warmup=True)
    step, elapsed, cpu_seconds = 0, 0.0, 0.0
    if folder.is_dir():
        accepts = getattr(task, "accepts", lambda saved: saved == task.saved_config)
        step, elapsed, cpu_seconds = _resume(folder, objective, optimizer, lr_schedule, ema, accepts)
        accelerator.print(f"{task.name}: resuming {folder} at step {step}")
    if budget_spent(cfg, step, cpu_seconds):
        ema.copy_to(objective.parameters())
        objective.to(accelerator.device)
        return TrainingResult(step, elapsed, cpu_seconds)

    # A fresh draw per (seed, step): a resumed run does not replay the batches it saw; each
    # process of a distributed run draws its own.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step * 7 + accelerator.process_index)
    sampler = task.sampler((cfg.steps - step) * cfg.batch_size, generator)
    loader = DataLoader(task.dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
    model, optimizer, lr_schedule = accelerator.prepare(objective, optimizer, lr_schedule)
    ema.to(accelerator.device)
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and accelerator.is_main_process), desc=task.name, unit="step")
    started = time.perf_counter() - elapsed
    cpu_started = time.process_time() - cpu_seconds
    last_checkpoint = last_log = time.perf_counter()
    last_loss = float("nan")
    on_step = getattr(objective, "on_step", None)
    model.train()
    for batch in loader:
        if on_step is not None:
            on_step(step)
        inputs = task.to_batch(batch, accelerator.device)
        with accelerator.autocast():
            losses = model(**inputs)
            loss = sum(cfg.loss_weights.get(name, 1.0) * value for name, value in losses.items())
        if not torch.isfinite(loss):
            raise WorldsimError(
                f"{task.name} training diverged at step {step} (loss {loss.item()}): lower the learning rate or check the data"
            )
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        step += 1
        last_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}")
        if writer is not None and step % cfg.log_every == 0:
            now = time.perf_counter()
            for name, value in losses.items():
                writer.add_scalar(f"{task.name}/loss_{name}", value.item(), step)
            writer.add_scalar(f"{task.name}/loss", last_loss, step)
            writer.add_scalar(f"{task.name}/grad_norm", float(grad_norm), step)
            writer.add_scalar(f"{task.name}/steps_per_second", cfg.log_every / (now - last_log), step)
            last_log = now
        done = budget_spent(cfg, step, time.process_time() - cpu_started)
        due = step % cfg.checkpoint_every == 0 or time.perf_counter() - last_checkpoint > 60 * cfg.checkpoint_minutes
        if accelerator.is_main_process and (due or done):
            times = (time.perf_counter() - started, time.process_time() - cpu_started)
            _save(folder, accelerator.unwrap_model(model), optimizer, lr_schedule, ema, task.saved_config, step, *times)
            last_checkpoint = time.perf_counter()
        if accelerator.is_main_process and cfg.eval_every and (step % cfg.eval_every == 0 or done):
            with ema_weights(ema, accelerator.unwrap_model(model)) as ema_model:
                ema_model.eval()
                task.evaluate(ema_model, step, (time.perf_counter() - started) / 3600, last_loss, writer)
                ema_model.train()
        if done:
            break
    bar.close()
    accelerator.wait_for_everyone()
    objective = accelerator.unwrap_model(model)
    ema.copy_to(objective.parameters())
    objective.eval()
    return TrainingResult(step, time.perf_counter() - started, time.process_time() - cpu_started)


def budget_spent(cfg: LoopConfig, step: int, cpu_seconds: float) -> bool:
    """Whether a run is done: at its steps, or out of its CPU time (``max_cpu_minutes``)."""
    return step >= cfg.steps or (cfg.max_cpu_minutes is not None and cpu_seconds >= 60 * cfg.max_cpu_minutes)


def _save(
    folder: Path, module, optimizer, lr_schedule, ema: EMAModel, config: dict[str, Any], step: int, elapsed: float, cpu_seconds: float
) -> None:
    raw = {f"raw/{name}": tensor for name, tensor in module.state_dict().items()}
    with ema_weights(ema, module) as ema_module:
        save_checkpoint(
            folder,
            ema_module,
            config,
            optimizer=optimizer,
            training_state={
                "step": step,
                "elapsed_seconds": elapsed,
                "cpu_seconds": cpu_seconds,
                "lr_schedule": lr_schedule.state_dict(),
                "ema_optimization_step": ema.optimization_step,
            },
            training_tensors=raw,
        )


def _resume(folder: Path, module, optimizer, lr_schedule, ema: EMAModel, accepts) -> tuple[int, float]:
    checkpoint = load_checkpoint(folder)
    saved = {key: value for key, value in checkpoint.config.items() if key not in ("format", "format_version", "checksums")}
    if not accepts(saved):
        raise WorldsimError(f"{folder} was trained with another config or other data: use a new --out folder, or the same config as before")
    load_weights(module, checkpoint)  # the EMA weights first: they become the EMA's shadow
    ema.shadow_params = [p.detach().clone() for p in module.parameters()]
    ema.optimization_step = checkpoint.training_state["ema_optimization_step"]
    raw = {name.removeprefix("raw/"): t for name, t in checkpoint.training_tensors.items() if name.startswith("raw/")}
    module.load_state_dict(raw)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    lr_schedule.load_state_dict(checkpoint.training_state["lr_schedule"])
    state = checkpoint.training_state
    # cpu_seconds: absent from checkpoints written before CPU time was kept; their wall time stands in
    return int(state["step"]), float(state["elapsed_seconds"]), float(state.get("cpu_seconds", state["elapsed_seconds"]))


def train_with_tensorboard(
    task: TrainingTask, cfg: LoopConfig, out: Path, name: str, accelerator: Accelerator, *, seed: int, progress: bool
) -> TrainingResult:
    """A one-network run: ``task`` trained in ``out/name`` with the run's tensorboard at
    ``out/tensorboard``, written by the main process only."""
    writer = tensorboard_writer(out) if accelerator.is_main_process else None
    result = train(task, cfg, out / name, accelerator, seed=seed, writer=writer, progress=progress)
    if writer is not None:
        writer.close()
    return result


def tensorboard_writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
