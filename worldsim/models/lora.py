"""LoRA adapters on the next-frame denoiser (peft), and the adapter checkpoint they are saved as.

Reward-gradient alignment (VADER) fine-tunes a world model through its own sampling, but only in a
low-rank update of the denoiser's U-Net: the base weights stay frozen, so an adapter is small
(~1 MB at rank 8 for the shipped model), cheap to train on a CPU, and can be dropped to get the base
model back. peft does the injection (``peft.inject_adapter_in_model``: the U-Net is a plain module
here, not a transformers model) and the merging.

Which layers (``LoraSettings.targets``, name suffixes inside ``FrameDenoiser.network``):

* ``conv1``/``conv2`` of every residual block: where the frame's content is drawn (Mario's sprite,
  what blurs away);
* ``time_emb_proj``: the adaptive group norm's scale and shift, computed from the noise level and the
  context embedding, i.e. where the action enters each block (what controllability depends on);
* ``to_q``/``to_k``/``to_v``/``to_out.0``: the middle block's attention (the frame's global layout);
* ``conv_out``: features to pixels; with space-to-depth each of its output channels is one pixel of
  a patch, so its update reaches 4x4-pixel sprites directly;
* ``refine.0``/``refine.2``/``refine.4``: the full-resolution refinement convs, when the model has them.

Left alone: ``conv_in`` (reading the context), the 1x1 shortcuts and the resamplers (routing, not
content), and the end model (the dream's rewards must not move with the frames' looks).

An adapter checkpoint is a worldsim checkpoint folder (``worldsim.core.checkpoint``) of kind
``adapter``: ``model.safetensors`` holds the LoRA tensors (peft's names), ``config.json`` the LoRA
settings, the exact target modules and the **base model's fingerprint** (``weights_fingerprint``: the
SHA-256 of its weights as loaded), so loading it on another base is one error instead of a silently
wrong model; a training run adds the optimizer and its step (``training.*``) to resume from.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldsim.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from worldsim.core.checkpoint_kinds import ADAPTER, require_kind
from worldsim.core.serialization import from_dict, to_dict
from worldsim.errors import WorldsimError

DEFAULT_TARGETS = ("conv1", "conv2", "time_emb_proj", "to_q", "to_k", "to_v", "to_out.0", "conv_out", "refine.0", "refine.2", "refine.4")
ADAPTER_NAME = "default"  # peft's adapter name; one adapter at a time here


@dataclass
class LoraSettings:
    """A LoRA update ``W + (alpha / rank) * B @ A`` on the ``targets`` of the denoiser's network."""

    rank: int = 8
    alpha: float = 8.0  # alpha = rank: the update's scale does not change with the rank
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))  # name suffixes in FrameDenoiser.network

    def __post_init__(self):
        if int(self.rank) != self.rank or self.rank < 1:
            raise WorldsimError(f"LoRA rank must be an integer >= 1, got {self.rank!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise WorldsimError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")


def _peft():
    try:
        import peft
    except ImportError:
        raise WorldsimError("LoRA adapters need peft: pip install 'worldsim[lora]'") from None
    return peft


def target_modules(denoiser: nn.Module, targets: list[str]) -> list[str]:
    """The full names (inside ``denoiser``) of the conv and linear layers of its network whose
    names end with one of ``targets``; one error when there are none."""
    names = [
        name
        for name, module in denoiser.named_modules()
        if name.startswith("network.")
        and isinstance(module, nn.Conv2d | nn.Linear)
        and any(name.endswith("." + target) for target in targets)
    ]
    if not names:
        raise WorldsimError(f"no conv or linear layer of the denoiser's network ends with any of {targets}: name layers of FrameUNet")
    return names


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over ``module``'s state_dict (names sorted; each name, dtype, shape and bytes).

    Computed on the weights as loaded, so it is the same on any device and for any copy of the
    checkpoint, and differs once anything (an adapter merged in) has changed them.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` carries injected (unmerged) LoRA layers."""
    try:
        return bool(_lora_layers(model))
    except ImportError:  # no peft, no adapter
        return False


def add_lora(model: nn.Module, settings: LoraSettings, target_names: list[str] | None = None) -> list[nn.Parameter]:
    """Inject LoRA layers into ``model.denoiser`` (a ``WorldModel``), freeze every other weight of
    ``model``, and return the LoRA parameters (the only ones that train).

    The update starts at zero (peft initialises B to 0), so the model's frames are unchanged until
    it trains. ``target_names``: exact module names (an adapter's), else found from ``settings``.
    """
    peft = _peft()
    if has_lora(model):
        raise WorldsimError("this world model already carries a LoRA adapter: load the base model again to add another")
    names = target_names or target_modules(model.denoiser, settings.targets)
    config = peft.LoraConfig(r=int(settings.rank), lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=names)
    peft.inject_adapter_in_model(config, model.denoiser, adapter_name=ADAPTER_NAME)
    model.requires_grad_(False)
    parameters = lora_parameters(model)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The LoRA parameters of ``model`` (peft names them ``...lora_A...``/``...lora_B...``)."""
    return [parameter for name, parameter in model.named_parameters() if ".lora_" in name]


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"lora": trainable LoRA parameters, "base": every other parameter}``."""
    lora = sum(p.numel() for p in lora_parameters(model))
    return {"lora": lora, "base": sum(p.numel() for p in model.parameters()) - lora}


def lora_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors, by peft's names (relative to the denoiser, adapter name dropped)."""
    return _peft().get_peft_model_state_dict(model.denoiser, adapter_name=ADAPTER_NAME)


def load_lora_weights(model: nn.Module, weights: dict[str, torch.Tensor], where: str = "the adapter") -> None:
    """Copy an adapter's tensors into the LoRA layers of ``model``; missing or unexpected ones are an error."""
    result = _peft().set_peft_model_state_dict(model.denoiser, weights, adapter_name=ADAPTER_NAME)
    lora_keys = {key for key in result.missing_keys if ".lora_" in key}
    if lora_keys or result.unexpected_keys:
        raise WorldsimError(
            f"{where} does not fit this world model's LoRA layers (missing {sorted(lora_keys)[:3]}, unexpected "
            f"{sorted(result.unexpected_keys)[:3]}): it was saved for another architecture"
        )


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: ``model`` with its (unmerged) LoRA layers switched off, i.e. the base model;
    switched on again (and trainable) on exit."""
    layers = [layer for _, layer in _lora_layers(model)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def merge_lora(model: nn.Module) -> None:
    """Fold each LoRA update into its base weight and put the plain layer back (peft's ``merge``
    on each layer; ``inject_adapter_in_model`` has no ``merge_and_unload``). The model then runs at
    the base model's speed and carries no trainable adapter."""
    for name, layer in _lora_layers(model):
        layer.merge(safe_merge=True)  # safe: a NaN in the update is an error, not a broken model
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer.get_base_layer())


# ----------------------------------------------------------------------------- adapter checkpoints


@dataclass
class Adapter:
    """An adapter checkpoint as read back: its settings, the exact layers it targets, the base
    model's fingerprint, its tensors, and whatever else its ``config.json`` records (the aligner's
    settings, the rewards); ``checkpoint`` holds the training state when it was saved with one."""

    settings: LoraSettings
    target_names: list[str]
    base_fingerprint: str
    weights: dict[str, torch.Tensor]
    info: dict[str, Any]
    checkpoint: Checkpoint


def save_adapter(
    path: str | os.PathLike,
    model: nn.Module,
    settings: LoraSettings,
    base_fingerprint: str,
    *,
    info: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    training_state: dict[str, Any] | None = None,
    files: dict[str, bytes | str] | None = None,
) -> Path:
    """Write ``model``'s adapter as a checkpoint folder (atomically: a sibling folder renamed into place).

    ``info``: JSON-able facts stored in config.json beside the LoRA settings (who trained it, on
    which rewards); ``optimizer`` and ``training_state`` make it resumable.
    """
    config = {
        "kind": ADAPTER,
        "lora": to_dict(settings),
        "target_modules": target_modules_of(model),
        "base": {"weights_sha256": base_fingerprint},
        **(info or {}),
    }
    return save_checkpoint(path, lora_weights(model), config, optimizer=optimizer, training_state=training_state, files=files)


def target_modules_of(model: nn.Module) -> list[str]:
    """The names (inside the denoiser) of the layers that carry LoRA in ``model``."""
    return [name for name, _ in _lora_layers(model.denoiser)]


def read_adapter(path: str | os.PathLike, device: str | torch.device = "cpu") -> Adapter:
    """An adapter checkpoint folder, checked (checksums, kind); one ``WorldsimError`` otherwise."""
    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, ADAPTER, checkpoint.path)
    config = dict(checkpoint.config)
    try:
        settings = from_dict(LoraSettings, config.pop("lora"), where="lora")
        names = list(config.pop("target_modules"))
        fingerprint = str(config.pop("base")["weights_sha256"])
    except (KeyError, TypeError) as error:
        raise WorldsimError(
            f"adapter {path}: config.json lacks {error} (lora, target_modules, base.weights_sha256): save it again"
        ) from error
    config.pop("kind", None)
    return Adapter(settings, names, fingerprint, checkpoint.weights, config, checkpoint)


def check_base(adapter: Adapter, model: nn.Module, fingerprint: str | None = None) -> None:
    """One error unless ``model`` (without LoRA) is the base the adapter was trained on."""
    found = fingerprint or weights_fingerprint(model)
    if found != adapter.base_fingerprint:
        raise WorldsimError(
            f"adapter {adapter.checkpoint.path} was trained on another world model (weights SHA-256 {adapter.base_fingerprint[:12]}...; "
            f"this one's are {found[:12]}...): load it with the checkpoint it was trained on"
        )


def apply_adapter(
    model: nn.Module, path: str | os.PathLike, *, merge: bool = True, scale: float = 1.0, sigma_max: float | None = None
) -> Adapter:
    """Load the adapter at ``path`` into ``model`` (a ``WorldModel`` without LoRA, in place): its
    base is checked first; ``merge=True`` folds it into the weights (inference speed), ``False``
    keeps the LoRA layers (to train further).

    ``scale`` multiplies the update (diffusers' ``lora_scale``): 0 is the base model, 1 the adapter
    as trained; in between, a model between the two (how much of what alignment changed to keep).

    ``sigma_max``: the adapter acts only at the sampler's noise levels ``<= sigma_max``; above, the
    base network denoises. The aligner puts gradients through the last sampling step only (at the
    shipped model's levels 5.0 and 0.25, ``sigma_max=1`` is that step); the earlier steps, which
    decide where things move, were never trained to change. The adapter is merged into a copy of
    the denoiser's network (``FrameDenoiser.use_low_noise_network``): the speed of the base model,
    the memory of two networks."""
    if not math.isfinite(scale) or scale < 0:
        raise WorldsimError(f"adapter scale must be a number >= 0 (1: as trained, 0: the base model), got {scale}")
    if sigma_max is not None:
        if not (math.isfinite(sigma_max) and sigma_max > 0):
            raise WorldsimError(f"adapter sigma_max must be a noise level > 0 (the adapter acts at levels <= it), got {sigma_max}")
        if not merge:
            raise WorldsimError("an adapter limited to low noise levels (sigma_max) is merged into a copy of the network: use merge=True")
        adapted = copy.deepcopy(model)
        adapter = apply_adapter(adapted, path, scale=scale)
        model.denoiser.use_low_noise_network(adapted.denoiser.network, sigma_max)
        model.requires_grad_(False)
        return adapter
    device = next(model.parameters()).device
    adapter = read_adapter(path, device)
    check_base(adapter, model)
    add_lora(model, adapter.settings, adapter.target_names)
    load_lora_weights(model, adapter.weights, where=f"adapter {adapter.checkpoint.path}")
    if scale != 1.0:
        for _, layer in _lora_layers(model):
            layer.set_scale(ADAPTER_NAME, scale)  # peft: scaling = scale * alpha / rank
    if merge:
        merge_lora(model)
        model.requires_grad_(False)  # a merged model is an env's: nothing of it trains
    return adapter


__all__ = [
    "Adapter",
    "LoraSettings",
    "adapters_disabled",
    "add_lora",
    "apply_adapter",
    "check_base",
    "count_parameters",
    "has_lora",
    "load_lora_weights",
    "lora_parameters",
    "lora_weights",
    "merge_lora",
    "read_adapter",
    "save_adapter",
    "target_modules",
    "weights_fingerprint",
]
