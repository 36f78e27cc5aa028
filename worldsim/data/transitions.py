"""From windows of recorded steps to what the world model trains and is evaluated on.

``SequenceDataset`` yields raw windows (uint8 frames, actions, rewards, terminations, info labels);
``model_batch`` turns a collated batch of them into model inputs and labels: frames as
``float[B, L, C, H, W]`` in ``[-1, 1]``, the rightward move ``x_delta`` from the ``x_pos`` label,
and the end class of each step (running, death, flag) from the termination and ``flag_get``.
"""

from __future__ import annotations

import torch

from worldsim.diffusion.sampler import from_uint8
from worldsim.models.heads import DEATH, FLAG, RUNNING

# The info labels these targets are derived from (``worldsim collect`` records them for Mario).
LABEL_KEYS = ("x_pos", "flag_get")


def model_batch(batch: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``{frames uint8[B, L, H, W, C], actions, rewards, ends, x_pos, flag_get}`` -> ``{frames float[B,
    L, C, H, W], actions int64[B, L], rewards float[B, L], x_delta float[B, L], end_class int64[B, L]}``.

    Labels at index ``i`` describe the step that produced frame ``i`` (zero for a window's first).
    """
    x_pos = batch["x_pos"].to(device).float()
    x_delta = torch.zeros_like(x_pos)
    x_delta[:, 1:] = x_pos[:, 1:] - x_pos[:, :-1]
    ends = batch["ends"].to(device)
    end_class = torch.full(ends.shape, RUNNING, dtype=torch.int64, device=device)
    end_class[ends] = DEATH
    end_class[ends & batch["flag_get"].to(device).bool()] = FLAG
    return {
        "frames": from_uint8(batch["frames"].to(device)),
        "actions": batch["actions"].to(device).long(),
        "rewards": batch["rewards"].to(device).float(),
        "x_delta": x_delta,
        "end_class": end_class,
    }
