"""Resumable training state shared by worldsim's trainers: EMA weights, checkpoints, tensorboard.

A resumable checkpoint stores the EMA weights as its ``model.safetensors`` (what inference loads),
and in its training files the raw weights, the optimizer, the learning-rate schedule, the step and
the elapsed training time. ``resume`` refuses a checkpoint written with another config.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from worldsim.errors import WorldsimError
from worldsim.train.checkpoint import load_checkpoint, load_weights, save_checkpoint


def training_objects(model: torch.nn.Module, cfg: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any, EMAModel]:
    """AdamW, a constant learning rate after linear warm-up (diffusers' scheduler) and an EMA of the
    weights, from a training config's ``optimizer`` section and ``ema_decay``."""
    settings = cfg["optimizer"]
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"], betas=tuple(settings.get("betas", (0.9, 0.999)))
    )
    lr_schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=settings["warmup_steps"])
    return optimizer, lr_schedule, EMAModel(model.parameters(), decay=cfg["ema_decay"], use_ema_warmup=True)


def optimizer_step(accelerator, model, optimizer, lr_schedule, ema: EMAModel, grad_clip: float) -> torch.Tensor:
    """Clip the gradients, step the optimizer and the schedule, update the EMA; returns the gradient norm."""
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    lr_schedule.step()
    optimizer.zero_grad(set_to_none=True)
    ema.step(accelerator.unwrap_model(model).parameters())
    return grad_norm


def hardware_description(accelerator) -> str:
    """What a model card says the training ran on: the GPU's name, or the CPU and its torch threads."""
    device = accelerator.device
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads"


class ema_weights:
    """Context manager: the model with its EMA weights swapped in, restored on exit."""

    def __init__(self, ema: EMAModel, model: torch.nn.Module):
        self.ema, self.model = ema, model

    def __enter__(self) -> torch.nn.Module:
        self.ema.store(self.model.parameters())
        self.ema.copy_to(self.model.parameters())
        return self.model

    def __exit__(self, *exc) -> None:
        self.ema.restore(self.model.parameters())


def save_resumable(path: Path, model, optimizer, lr_schedule, ema: EMAModel, config: dict[str, Any], step: int, elapsed: float) -> None:
    """Write a resumable checkpoint atomically (``config`` goes to its config.json)."""
    raw = {f"raw/{name}": tensor for name, tensor in model.state_dict().items()}
    with ema_weights(ema, model) as ema_model:
        save_checkpoint(
            path,
            ema_model,
            config,
            optimizer=optimizer,
            training_state={
                "step": step,
                "elapsed_seconds": elapsed,
                "lr_schedule": lr_schedule.state_dict(),
                "ema_optimization_step": ema.optimization_step,
            },
            training_tensors=raw,
        )


def resume(path: Path, model, optimizer, lr_schedule, ema: EMAModel, config: dict[str, Any]) -> tuple[int, float]:
    """Load a resumable checkpoint into the training objects; returns ``(step, elapsed seconds)``."""
    checkpoint = load_checkpoint(path)
    saved = {key: value for key, value in checkpoint.config.items() if key not in ("format", "format_version")}
    if saved != config:
        raise WorldsimError(
            f"{path} was trained with another model config or other data: use a new --out folder, or the same config as before"
        )
    load_weights(model, checkpoint)  # the EMA weights first: they become the EMA's shadow
    ema.shadow_params = [p.detach().clone() for p in model.parameters()]
    ema.optimization_step = checkpoint.training_state["ema_optimization_step"]
    raw = {name.removeprefix("raw/"): t for name, t in checkpoint.training_tensors.items() if name.startswith("raw/")}
    model.load_state_dict(raw)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    lr_schedule.load_state_dict(checkpoint.training_state["lr_schedule"])
    return int(checkpoint.training_state["step"]), float(checkpoint.training_state["elapsed_seconds"])


def tensorboard_writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
