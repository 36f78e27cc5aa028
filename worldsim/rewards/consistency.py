"""The consistency reward: the shipped inverse-dynamics probe reads the action back from the dreamed clip.

``worldsim/checkpoints/idm-mario-v0`` (``worldsim.models.inverse_dynamics``) was trained on real clips
only: 6 frames, the last 4 produced by one action held, and it names that action. Given the history
and the generated frame, its log-probability of the action the step was generated under is the
reward: high where the dream draws what that action does (Mario accelerating, jumping, turning).
No new weights: the probe is the one ``worldsim eval`` already uses as its controllability check
(so an alignment on this reward must be judged on the other controllability figures too).

The probe only knows clips of a held action: the reward is defined where the step's action equals
the actions of the ``held_steps - 1`` frames before it (the scripted runner holds right+B most of
the time; a random behaviour almost never holds an action 4 steps).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from worldsim.core.checkpoint import shipped_checkpoint
from worldsim.core.checkpoint_kinds import INVERSE_DYNAMICS
from worldsim.models.inverse_dynamics import InverseDynamicsConfig, InverseDynamicsModel
from worldsim.rewards.checkpoints import load_network
from worldsim.rewards.transition import Scores, Transition

SHIPPED_PROBE = "idm-mario-v0"


class ConsistencyReward(nn.Module):
    """``log p(action | history[-(frames-1):], next_frame)`` under the probe; defined where the
    action was held over the probe's ``held_steps``."""

    name = "consistency"

    def __init__(self, probe: InverseDynamicsModel):
        super().__init__()
        self.probe = probe
        self.history_frames = probe.config.frames - 1
        self.held_steps = probe.config.held_steps

    def score(self, transition: Transition) -> Scores:
        clip = torch.cat([transition.history[:, -self.history_frames :], transition.next_frame[:, None]], dim=1)
        log_probabilities = torch.log_softmax(self.probe(clip), dim=-1)
        values = log_probabilities.gather(1, transition.action[:, None]).squeeze(1)
        before = transition.history_actions[:, transition.history_actions.shape[1] - (self.held_steps - 1) :]
        held = (before == transition.action[:, None]).all(dim=1)
        return Scores(values, held)


def load_consistency_reward(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> ConsistencyReward:
    """The consistency reward of a probe checkpoint (default: the shipped ``idm-mario-v0``)."""
    probe, _ = load_network(
        path or shipped_checkpoint(SHIPPED_PROBE), INVERSE_DYNAMICS, "inverse_dynamics", InverseDynamicsConfig, InverseDynamicsModel, device
    )
    return ConsistencyReward(probe)
