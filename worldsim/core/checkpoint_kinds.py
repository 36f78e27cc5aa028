"""The one registry of checkpoint kinds: what a checkpoint folder holds, told from its ``config.json``.

Every worldsim checkpoint is the same kind of folder (``worldsim.core.checkpoint``); what it holds
differs: a world model for the dream env, a diffusion-forcing maze planner, an inverse-dynamics
probe (which action made a transition), later LoRA adapters.
Whoever needs to know asks here instead of testing config keys itself:

* ``checkpoint_kind(path)``: the kind of a checkpoint folder (reads ``config.json`` only);
* ``config_kind(config)``: the kind of a ``config.json`` already read;
* ``require_kind(config, kind, path)``: one ``WorldsimError`` when a checkpoint is not of the kind a
  loader needs;
* ``model_config_kind(values)``: the kind a Hydra model config (``configs/model/*.yaml``) trains:
  its ``kind:`` key, a world model when it has none.

A new kind is one ``CheckpointKind`` entry in ``CHECKPOINT_KINDS``. An adapter, for example, would be
``CheckpointKind("adapter", "a LoRA adapter", '"kind": "adapter"', lambda config: config.get("kind") == "adapter")``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worldsim.core.checkpoint import read_config
from worldsim.errors import WorldsimError

WORLD_MODEL = "world_model"
DIFFUSION_FORCING_PLANNER = "diffusion_forcing_planner"
INVERSE_DYNAMICS = "inverse_dynamics"
ADAPTER = "adapter"
REALISM_CRITIC = "realism_critic"
PLAYER_DETECTOR = "player_detector"
VIDEO_DIFFUSION = "video_diffusion"
PANORAMA_EXPLORER = "panorama_explorer"
GROUND_TILES = "ground_tiles"


@dataclass(frozen=True)
class CheckpointKind:
    """A kind of checkpoint: its name (the ``"kind"`` a config may carry), what it holds and what
    marks its ``config.json``, in words (for error messages), and the test that recognises it."""

    name: str
    holds: str
    marker: str
    recognise: Callable[[dict[str, Any]], bool]


def _is_world_model(config: dict[str, Any]) -> bool:
    # The world model's config.json carries no "kind" (the first shipped model predates kinds):
    # its "model" section (WorldModelConfig) is what marks it.
    return config.get("kind", WORLD_MODEL) == WORLD_MODEL and isinstance(config.get("model"), dict)


CHECKPOINT_KINDS: dict[str, CheckpointKind] = {
    WORLD_MODEL: CheckpointKind(WORLD_MODEL, "a world model", 'a "model" section', _is_world_model),
    DIFFUSION_FORCING_PLANNER: CheckpointKind(
        DIFFUSION_FORCING_PLANNER,
        "a diffusion-forcing maze planner",
        f'"kind": "{DIFFUSION_FORCING_PLANNER}"',
        lambda config: config.get("kind") == DIFFUSION_FORCING_PLANNER,
    ),
    INVERSE_DYNAMICS: CheckpointKind(
        INVERSE_DYNAMICS,
        "an inverse-dynamics probe",
        f'"kind": "{INVERSE_DYNAMICS}"',
        lambda config: config.get("kind") == INVERSE_DYNAMICS,
    ),
    ADAPTER: CheckpointKind(
        ADAPTER, "a LoRA adapter of a world model", f'"kind": "{ADAPTER}"', lambda config: config.get("kind") == ADAPTER
    ),
    REALISM_CRITIC: CheckpointKind(
        REALISM_CRITIC,
        "a realism critic (real vs dreamed frames)",
        f'"kind": "{REALISM_CRITIC}"',
        lambda config: config.get("kind") == REALISM_CRITIC,
    ),
    PLAYER_DETECTOR: CheckpointKind(
        PLAYER_DETECTOR,
        "a player detector (where the player is on screen)",
        f'"kind": "{PLAYER_DETECTOR}"',
        lambda config: config.get("kind") == PLAYER_DETECTOR,
    ),
    VIDEO_DIFFUSION: CheckpointKind(
        VIDEO_DIFFUSION,
        "a video diffusion model (whole clips)",
        f'"kind": "{VIDEO_DIFFUSION}"',
        lambda config: config.get("kind") == VIDEO_DIFFUSION,
    ),
    PANORAMA_EXPLORER: CheckpointKind(
        PANORAMA_EXPLORER,
        "a panorama explorer (GenEx: the panoramas of the next steps forward)",
        f'"kind": "{PANORAMA_EXPLORER}"',
        lambda config: config.get("kind") == PANORAMA_EXPLORER,
    ),
    GROUND_TILES: CheckpointKind(
        GROUND_TILES,
        "the ground tiles of a game (the ground reward's)",
        f'"kind": "{GROUND_TILES}"',
        lambda config: config.get("kind") == GROUND_TILES,
    ),
}


def config_kind(config: dict[str, Any], where: str = "the checkpoint") -> str:
    """The name of the kind whose recogniser accepts ``config``; ``WorldsimError`` when none does."""
    for kind in CHECKPOINT_KINDS.values():
        if kind.recognise(config):
            return kind.name
    raise WorldsimError(
        f"{where} is of no known checkpoint kind: its config.json has none of "
        f"{'; '.join(f'{kind.marker} ({kind.holds})' for kind in CHECKPOINT_KINDS.values())}"
    )


def checkpoint_kind(path: str | os.PathLike) -> str:
    """The kind of the checkpoint folder ``path`` (``"world_model"``, ``"diffusion_forcing_planner"``)."""
    return config_kind(read_config(path), where=f"checkpoint {path}")


def require_kind(config: dict[str, Any], kind: str, path: str | os.PathLike) -> None:
    """Raise one ``WorldsimError`` unless the checkpoint at ``path`` (its ``config.json`` read as
    ``config``) is of ``kind``."""
    found = config_kind(config, where=f"checkpoint {path}")
    if found != kind:
        raise WorldsimError(
            f"checkpoint {path} holds {CHECKPOINT_KINDS[found].holds}, not {CHECKPOINT_KINDS[kind].holds}: "
            f"pass a {kind} checkpoint (its config.json has {CHECKPOINT_KINDS[kind].marker})"
        )


def model_config_kind(values: dict[str, Any]) -> str:
    """The kind of checkpoint a Hydra model config trains: its ``kind:`` key (a world model without one)."""
    kind = values.get("kind", WORLD_MODEL)
    if kind not in CHECKPOINT_KINDS:
        raise WorldsimError(f"model config kind {kind!r} is unknown: choose one of {', '.join(CHECKPOINT_KINDS)}")
    return kind
