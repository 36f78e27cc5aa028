"""Real steps of a world model's game, drawn by update: what alignment holds its dreams against.

Both guards of an alignment run read them: the denoising anchor (``denoising_anchor.py``: the world
model's own loss on real steps) and the refreshed realism critic (``critic_refresh.py``: real steps
are its positives). Windows of ``K + 1`` frames under their recorded actions, the first ``K`` a
context, from a Minari dataset of the model's game (its training data).
"""

from __future__ import annotations

import numpy as np
import torch

from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.errors import WorldsimError
from worldsim.models.world_model import WorldModel


class RealSteps:
    """``batch(update, size, stream)``: ``size`` random windows, ``frames float[size, K + 1, C, H, W]``
    in ``[-1, 1]`` and ``actions int64[size, K + 1]`` (``actions[:, i]`` produced ``frames[:, i]``);
    ``batch(..., steps_after=n)``: windows of ``K + 1 + n`` frames (a context and ``n + 1`` steps).

    The draw depends only on ``(seed, stream, update)``: a resumed run draws what the uninterrupted
    one would have, and two users of the same steps (``stream`` 0 and 1) draw independently.
    """

    def __init__(self, model: WorldModel, dataset_id: str, seed: int = 0):
        k = model.context_length
        self.game, self.seed = model.config.game, seed
        self.device = next(model.parameters()).device
        self.windows = SequenceDataset(load_dataset(dataset_id), k + 1, self.game.label_keys, pad_start=k - 1)
        self._longer: dict[int, SequenceDataset] = {}  # steps_after -> windows over the same episodes
        if len(self.windows) == 0:
            raise WorldsimError(f"real dataset {dataset_id!r} has no window of {k + 1} frames: name a dataset of the model's game")
        shape = tuple(self.windows[0]["frames"].shape[1:])
        expected = (model.config.image_size, model.config.image_size, model.config.image_channels)
        if shape != expected:
            raise WorldsimError(
                f"real dataset {dataset_id!r} has {shape} frames, the world model {expected}: name a dataset of the model's game"
            )

    def batch(self, update: int, size: int, stream: int = 0, steps_after: int = 0) -> dict[str, torch.Tensor]:
        windows = self._windows(steps_after)
        chosen = np.random.default_rng((self.seed, stream, update)).integers(len(windows), size=size)
        batch = model_batch(stack_windows([windows[int(i)] for i in chosen]), self.game, self.device)
        return {"frames": batch["frames"], "actions": batch["actions"]}

    def _windows(self, steps_after: int) -> SequenceDataset:
        if steps_after == 0:
            return self.windows
        if steps_after not in self._longer:
            length = self.windows.length + steps_after
            self._longer[steps_after] = SequenceDataset(self.windows, length, self.game.label_keys, pad_start=self.windows.pad_start)
        return self._longer[steps_after]


__all__ = ["RealSteps"]
