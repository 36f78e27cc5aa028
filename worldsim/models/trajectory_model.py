"""The planner's model: diffusion forcing around a causal trajectory transformer, and its checkpoint.

``config.json`` of a planner checkpoint holds ``{"kind": "diffusion_forcing_planner", "planner":
TrajectoryModelConfig}``: the maze it was trained on, the token layout, the network, the noise
levels and the data's normaliser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from worldsim.core.checkpoint import load_checkpoint, load_weights
from worldsim.core.checkpoint_kinds import DIFFUSION_FORCING_PLANNER, require_kind
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.trajectories import STEP_DIM, Normalizer
from worldsim.diffusion.forcing import DiffusionForcing, ForcingConfig
from worldsim.models.trajectory_transformer import TrajectoryTransformer, TrajectoryTransformerConfig

PLANNER_KIND = DIFFUSION_FORCING_PLANNER


@dataclass
class TrajectoryModelConfig:
    maze: str = "umaze"
    frame_stack: int = 8  # steps per token
    num_tokens: int = 16  # tokens per training window; a plan is the history token and num_tokens - 1 planned ones
    network: TrajectoryTransformerConfig = field(default_factory=TrajectoryTransformerConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    normalizer: dict[str, list[float]] = field(default_factory=dict)

    @property
    def plan_steps(self) -> int:
        """Future steps in a plan: every token but the first, which holds the recent history."""
        return self.frame_stack * (self.num_tokens - 1)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrajectoryModelConfig:
        """The network's token size and length follow the token layout."""
        values = dict(values)
        frame_stack = int(values.get("frame_stack", 8))
        network = {**(values.get("network") or {}), "token_dim": frame_stack * STEP_DIM}
        network.setdefault("max_tokens", int(values.get("num_tokens", 16)))
        return from_dict(cls, {**values, "network": network}, where="planner")

    def normalizer_object(self) -> Normalizer:
        return Normalizer.from_dict(self.normalizer)


def build_trajectory_model(config: TrajectoryModelConfig) -> DiffusionForcing:
    return DiffusionForcing(TrajectoryTransformer(config.network), config.forcing)


def load_trajectory_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DiffusionForcing, TrajectoryModelConfig]:
    """Rebuild a planner's model from its checkpoint folder (eval mode, on ``device``)."""
    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, DIFFUSION_FORCING_PLANNER, checkpoint.path)
    config = TrajectoryModelConfig.from_dict(checkpoint.config["planner"])
    model = build_trajectory_model(config)
    load_weights(model, checkpoint)
    return model.to(device).eval(), config
