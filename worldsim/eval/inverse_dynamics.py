"""The inverse-dynamics check: does a classifier trained on real transitions recognise the action
in dreamed ones?

For held-out windows of K+1 real steps, the probe reads (frame t-1, frame t, frame t+1) where frame
t+1 is, in turn, the real next frame, the frame the world model generates under the recorded
action from the real context, and the last frame copied (a model that ignores everything). Its
accuracy on dreamed transitions over its accuracy on real ones is the controllability score.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from worldsim.core.checkpoint_kinds import INVERSE_DYNAMICS, require_kind
from worldsim.core.serialization import from_dict
from worldsim.models.inverse_dynamics import InverseDynamicsConfig, InverseDynamicsModel
from worldsim.models.world_model import WorldModel


def load_probe(path: str | os.PathLike, device: str | torch.device = "cpu") -> InverseDynamicsModel:
    """The inverse-dynamics probe in a checkpoint folder (``worldsim train --model idm-mario``)."""
    from worldsim.core.checkpoint import load_checkpoint, load_weights

    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, INVERSE_DYNAMICS, checkpoint.path)
    probe = InverseDynamicsModel(from_dict(InverseDynamicsConfig, checkpoint.config["inverse_dynamics"]))
    load_weights(probe, checkpoint)
    return probe.to(device).eval()


@dataclass
class ProbeReport:
    transitions: int
    real_accuracy: float  # on real next frames
    dream_accuracy: float  # on generated next frames, recorded action, real context
    copy_accuracy: float  # on the last frame copied
    chance: float  # the most frequent action's share

    @property
    def dream_over_real(self) -> float:
        return self.dream_accuracy / self.real_accuracy if self.real_accuracy else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"dream_over_real": self.dream_over_real}


@torch.no_grad()
def probe_accuracy(model: WorldModel, probe: InverseDynamicsModel, batches, generator: torch.Generator | None = None) -> ProbeReport:
    """``batches`` of ``model_batch`` windows of K+1 steps (K >= probe frames - 1)."""
    from worldsim.eval.fidelity import rollout

    width = probe.config.frames - 1  # real frames before the step's frame
    hits = np.zeros(3)
    actions_seen = []
    for batch in batches:
        frames, actions = batch["frames"], batch["actions"]
        target = actions[:, -1]
        generated, _ = rollout(model, frames, actions, 1, generator)
        before = frames[:, -1 - width : -1]
        for index, step_frame in enumerate((frames[:, -1], generated[:, 0], frames[:, -2])):
            predicted = probe(torch.cat([before, step_frame[:, None]], dim=1)).argmax(-1)
            hits[index] += (predicted == target).sum().item()
        actions_seen.append(target.cpu().numpy())
    seen = np.concatenate(actions_seen)
    count = len(seen)
    real, dream, copy = hits / max(count, 1)
    return ProbeReport(count, float(real), float(dream), float(copy), float(np.bincount(seen).max() / max(count, 1)))
