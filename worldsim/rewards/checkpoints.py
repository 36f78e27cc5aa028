"""Loading a reward's network from its checkpoint folder (``worldsim train`` writes them as ``OUT/model``).

Every reward network is saved the same way (safetensors + config.json with its kind and its
architecture under one key), so one loader serves the realism critic, the player detector and the
inverse-dynamics probe; the weights come back frozen, in eval mode.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from worldsim.core.checkpoint import Checkpoint, load_checkpoint, load_weights
from worldsim.core.checkpoint_kinds import require_kind
from worldsim.core.serialization import from_dict


def load_network(
    path: str | os.PathLike, kind: str, section: str, config_class: type, network_class: type[nn.Module], device: str | torch.device = "cpu"
) -> tuple[Any, Checkpoint]:
    """``network_class(config)`` with the weights of the ``kind`` checkpoint at ``path``, whose
    config.json holds the architecture under ``section``; frozen, in eval mode, on ``device``."""
    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, kind, checkpoint.path)
    network = network_class(from_dict(config_class, checkpoint.config.get(section), where=section))
    load_weights(network, checkpoint)
    network.requires_grad_(False)
    return network.to(device).eval(), checkpoint
