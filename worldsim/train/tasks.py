"""Which training task trains which checkpoint kind: ``worldsim train``'s one dispatch.

A Hydra model config names its kind (``kind:``, a world model without one; see
``worldsim.core.checkpoint_kinds``); ``TRAINING_TASKS`` maps the kind to the task that trains it on
the one training loop (``worldsim.train.loop``). A new kind of model is one entry here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worldsim.core.checkpoint_kinds import (
    DIFFUSION_FORCING_PLANNER,
    INVERSE_DYNAMICS,
    PANORAMA_EXPLORER,
    PLAYER_DETECTOR,
    REALISM_CRITIC,
    VIDEO_DIFFUSION,
    WORLD_MODEL,
    model_config_kind,
)
from worldsim.errors import WorldsimError

# kind -> "module:function"; imported on demand (each pulls in its own models and data).
TRAINING_TASKS: dict[str, str] = {
    WORLD_MODEL: "worldsim.train.world_model_training:train_world_model",
    DIFFUSION_FORCING_PLANNER: "worldsim.train.planner_training:train_planner",
    INVERSE_DYNAMICS: "worldsim.train.idm_training:train_inverse_dynamics",
    REALISM_CRITIC: "worldsim.train.realism_training:train_realism_critic",
    PLAYER_DETECTOR: "worldsim.train.presence_training:train_player_detector",
    VIDEO_DIFFUSION: "worldsim.train.video_training:train_video_model",
    PANORAMA_EXPLORER: "worldsim.train.explorer_training:train_explorer",
}


def train_model(
    model_values: dict[str, Any],
    train_values: dict[str, Any],
    out: str | os.PathLike,
    *,
    command: str = "",
    progress: bool = True,
    heldout_evaluator: Callable | None = None,
) -> Path | None:
    """Train (or resume) the model that ``model_values`` describes with ``train_values`` into ``out``;
    returns the finished model folder (None while a world model still has phases to run).

    ``heldout_evaluator`` is the world model's held-out curve (``worldsim.eval.fidelity.heldout_curve``,
    passed in by the caller: training imports no evaluation); other kinds do not take one.
    """
    kind = model_config_kind(model_values)
    if kind not in TRAINING_TASKS:
        raise WorldsimError(f"worldsim train has no task for {kind} models: train one of {', '.join(TRAINING_TASKS)}")
    module_name, function_name = TRAINING_TASKS[kind].split(":")
    task = getattr(importlib.import_module(module_name), function_name)
    extra = {"heldout_evaluator": heldout_evaluator} if kind == WORLD_MODEL else {}
    return task(model_values, train_values, Path(out), command=command, progress=progress, **extra)
