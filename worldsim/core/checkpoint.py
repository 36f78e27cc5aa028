"""Checkpoints as folders of safetensors and JSON: written atomically, loaded without unpickling.

A checkpoint folder holds

* ``model.safetensors``: the model's weights (``state_dict``);
* ``config.json``: what is needed to rebuild the model (architecture, preprocessing, action set),
  plus ``"format": "worldsim-checkpoint"``, its version, and ``"checksums"``: the SHA-256 of each
  binary file (the weights, the training state, binary extras such as ``start_states.npz``);
* optionally ``training.safetensors`` + ``training.json``: the optimizer's state and the step
  counter, so that training resumes where it stopped;
* any further files the caller adds (``start_states.npz``, ``README.md``).

``save_checkpoint`` writes everything into a temporary sibling folder and renames it into place,
so a reader (or a run killed mid-write) only ever sees a complete checkpoint. ``load_checkpoint``
checks the recorded checksums, so a file damaged after saving (a bad copy, a disk error that
leaves a valid-looking safetensors file with wrong numbers) is an error instead of a silently
wrong model. A checkpoint written before checksums were recorded loads without the check.

What a checkpoint holds (a world model, a maze planner, ...) is its kind, told from ``config.json``
by the one registry in ``worldsim.core.checkpoint_kinds``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from worldsim.errors import WorldsimError

FORMAT = "worldsim-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINING_TENSORS_FILE = "training.safetensors"
TRAINING_STATE_FILE = "training.json"
CHECKSUMS_KEY = "checksums"  # in config.json: {file name: SHA-256 hex digest}
EXTRA_PREFIX = "extra/"  # training tensors other than the optimizer's (whose keys start "optimizer")


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: weights, config, and the training state if saved."""

    path: Path
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    training_state: dict[str, Any] = field(default_factory=dict)
    training_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module | dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    training_state: dict[str, Any] | None = None,
    training_tensors: dict[str, torch.Tensor] | None = None,
    files: dict[str, bytes | str] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path``, replacing any checkpoint there in one rename.

    ``training_state`` (JSON-serialisable: step, epoch, RNG seeds, ...) and the optimizer's state
    are stored for resuming, with any ``training_tensors`` (e.g. the raw weights behind an EMA
    ``model``); ``files`` maps extra file names to their contents. ``model`` may also be the tensors
    themselves, by name (a LoRA adapter's, which are no module of their own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = model.state_dict() if isinstance(model, torch.nn.Module) else model
        weights = {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}
        save_file(weights, staging / MODEL_FILE)
        binary = [MODEL_FILE]
        if optimizer is not None or training_state is not None or training_tensors:
            tensors, structure = _flatten_optimizer_state(optimizer.state_dict()) if optimizer is not None else ({}, None)
            extra = {f"{EXTRA_PREFIX}{name}": t.detach().contiguous().cpu() for name, t in (training_tensors or {}).items()}
            save_file(tensors | extra, staging / TRAINING_TENSORS_FILE)
            state = {"optimizer": structure, **(training_state or {})}
            (staging / TRAINING_STATE_FILE).write_text(json.dumps(state, indent=2))
            binary.append(TRAINING_TENSORS_FILE)
        for name, content in (files or {}).items():
            target = staging / name
            if isinstance(content, bytes):
                target.write_bytes(content)
                binary.append(name)
            else:
                target.write_text(content)
        checksums = {name: file_sha256(staging / name) for name in binary}
        header = {"format": FORMAT, "format_version": FORMAT_VERSION}
        body = {key: value for key, value in config.items() if key != CHECKSUMS_KEY}  # a re-saved config's are stale
        (staging / CONFIG_FILE).write_text(json.dumps({**header, **body, CHECKSUMS_KEY: checksums}, indent=2))
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint folder's ``config.json`` (checksums included), checked to be a complete worldsim
    checkpoint of this format version; reads no weights (``checkpoint_kind`` uses it)."""
    path = Path(path)
    if not path.is_dir():
        raise WorldsimError(f"no checkpoint at {path}: pass the folder that holds {MODEL_FILE} and {CONFIG_FILE}")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise WorldsimError(f"checkpoint {path} has no {name}: it is incomplete; train or copy it again")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as error:
        raise WorldsimError(f"checkpoint {path}: {CONFIG_FILE} is not valid JSON ({error.msg}, line {error.lineno})") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise WorldsimError(f'checkpoint {path} is not a worldsim checkpoint ({CONFIG_FILE} lacks "format": "{FORMAT}")')
    if config.get("format_version") != FORMAT_VERSION:
        raise WorldsimError(
            f"checkpoint {path} has format version {config.get('format_version')}, this worldsim reads {FORMAT_VERSION}: "
            "use the worldsim version that wrote it"
        )
    return config


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint folder; any missing, corrupted or foreign file is one ``WorldsimError``.

    The files listed in config.json's ``"checksums"`` are verified first; the returned ``config``
    is config.json without them (it is what the caller saved).
    """
    path = Path(path)
    config = read_config(path)
    verify_checksums(path, config.pop(CHECKSUMS_KEY, None))
    weights = _load_tensors(path / MODEL_FILE, map_location)

    optimizer_state, training_state, extra = None, {}, {}
    if (path / TRAINING_STATE_FILE).is_file():
        training_state = json.loads((path / TRAINING_STATE_FILE).read_text())
        structure = training_state.pop("optimizer", None)
        tensors = _load_tensors(path / TRAINING_TENSORS_FILE, map_location)
        extra = {name.removeprefix(EXTRA_PREFIX): t for name, t in tensors.items() if name.startswith(EXTRA_PREFIX)}
        if structure is not None:
            optimizer_state = _unflatten_optimizer_state(tensors, structure)
    return Checkpoint(path, weights, config, optimizer_state, training_state, extra)


def load_weights(model: torch.nn.Module, checkpoint: Checkpoint) -> None:
    """``model.load_state_dict`` with one clear error when the weights do not fit the model."""
    try:
        model.load_state_dict(checkpoint.weights)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise WorldsimError(
            f"checkpoint {checkpoint.path} does not fit this model ({first}): its config.json and weights disagree, "
            "or it was written by another architecture"
        ) from error


def file_sha256(file: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(path: Path, checksums: dict[str, str] | None) -> None:
    """Raise one ``WorldsimError`` naming the first file of ``path`` whose SHA-256 is not the recorded one.

    ``None`` (a checkpoint saved before checksums were recorded) checks nothing.
    """
    if checksums is None:
        return
    if not isinstance(checksums, dict):
        raise WorldsimError(f'checkpoint {path}: "{CHECKSUMS_KEY}" in {CONFIG_FILE} is not a mapping of file names to SHA-256 digests')
    for name, expected in checksums.items():
        file = path / name
        if not file.is_file():
            raise WorldsimError(f"checkpoint {path} has no {name}: it is incomplete; copy or train it again")
        if file_sha256(file) != expected:
            raise WorldsimError(
                f"{file} is damaged (its SHA-256 differs from the one recorded in {CONFIG_FILE} when it was saved): "
                "copy the checkpoint again, or train it again"
            )


def _load_tensors(file: Path, map_location) -> dict[str, torch.Tensor]:
    try:
        return load_file(file, device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise WorldsimError(f"{file} is corrupted ({error}): train or copy the checkpoint again") from error


def _replace_folder(staging: Path, path: Path) -> None:
    """Move ``staging`` to ``path``; an existing ``path`` is swapped out first, then deleted."""
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
        os.rename(staging, path)
        shutil.rmtree(old)
    else:
        os.rename(staging, path)


# The optimizer's state_dict nests tensors in dicts and lists; safetensors stores flat tensors only.
# Tensors go to safetensors under generated keys; everything else (hyperparameters, ints) to JSON.


def _flatten_optimizer_state(state: Any, prefix: str = "optimizer") -> tuple[dict[str, torch.Tensor], Any]:
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().contiguous().cpu()
            return {"__tensor__": key}
        if isinstance(value, dict):
            return {"__dict__": [[walk(k, f"{key}.k{i}"), walk(v, f"{key}.{i}")] for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, list | tuple):
            return {"__list__": [walk(v, f"{key}.{i}") for i, v in enumerate(value)]}
        return value

    return tensors, walk(state, prefix)


def _unflatten_optimizer_state(tensors: dict[str, torch.Tensor], structure: Any) -> Any:
    if isinstance(structure, dict):
        if "__tensor__" in structure:
            return tensors[structure["__tensor__"]]
        if "__dict__" in structure:
            return {_unflatten_optimizer_state(tensors, k): _unflatten_optimizer_state(tensors, v) for k, v in structure["__dict__"]}
        if "__list__" in structure:
            return [_unflatten_optimizer_state(tensors, v) for v in structure["__list__"]]
    return structure


def shipped_checkpoint(name: str) -> Path:
    """The folder of a checkpoint shipped inside the package (``worldsim/checkpoints/<name>``).

    The one place that finds shipped models: the dream env's default (``mario-v0``,
    ``worldsim.envs.dream.shipped_checkpoint``) and each maze's planner (``df-<maze>-v0``) go through it.
    """
    path = Path(str(files("worldsim") / "checkpoints" / name))
    if not path.is_dir():
        raise WorldsimError(f"worldsim ships no checkpoint {name!r} (looked in {path}): pass the path of a trained model folder")
    return path
