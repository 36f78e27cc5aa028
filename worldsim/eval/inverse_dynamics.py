"""The inverse-dynamics check: does a classifier trained on real clips recognise the action in
dreamed ones?

Held-out windows where one action was held for the probe's ``held_steps`` steps: the probe reads
the frames before and the held steps' frames, which are, in turn, the real ones, the ones the world
model generates from the real context under the recorded (held) action, and the last context frame
copied (a model that ignores everything). Its accuracy on dreamed clips over its accuracy on real
ones is the controllability score.
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
    clips: int
    real_accuracy: float  # on real frames
    dream_accuracy: float  # on generated frames: real context, the recorded (held) action
    copy_accuracy: float  # on the last context frame copied
    chance: float  # the most frequent action's share

    @property
    def dream_over_real(self) -> float:
        return self.dream_accuracy / self.real_accuracy if self.real_accuracy else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"dream_over_real": self.dream_over_real}


@torch.no_grad()
def probe_accuracy(model: WorldModel, probe: InverseDynamicsModel, batches, generator: torch.Generator | None = None) -> ProbeReport:
    """``batches`` of ``model_batch`` windows of K + ``held_steps`` steps; those whose last
    ``held_steps`` actions differ are skipped."""
    from worldsim.eval.fidelity import rollout

    held_steps = probe.config.held_steps
    before = probe.config.frames - held_steps  # frames the probe reads before the held steps
    k = model.context_length
    hits = np.zeros(3)
    actions_seen = []
    for batch in batches:
        frames, actions = batch["frames"], batch["actions"]
        held = (actions[:, -held_steps:] == actions[:, -1:]).all(dim=1)
        if not held.any():
            continue
        frames, actions = frames[held], actions[held]
        target = actions[:, -1]
        generated, _ = rollout(model, frames, actions, held_steps, generator)
        context = frames[:, k - before : k]
        copied = frames[:, k - 1 : k].expand(-1, held_steps, -1, -1, -1)
        for index, clip in enumerate((frames[:, k:], generated, copied)):
            predicted = probe(torch.cat([context, clip], dim=1)).argmax(-1)
            hits[index] += (predicted == target).sum().item()
        actions_seen.append(target.cpu().numpy())
    seen = np.concatenate(actions_seen)
    count = len(seen)
    real, dream, copy = hits / max(count, 1)
    return ProbeReport(count, float(real), float(dream), float(copy), float(np.bincount(seen).max() / max(count, 1)))
