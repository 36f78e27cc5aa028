"""The world model's own denoising loss on real steps, as an anchor for reward alignment.

Why: a fixed reward network can be gamed. The first alignment run on a fixed realism critic raised
the critic's score from -20 to -4.5 while next-frame PSNR on held-out episodes fell from 23.3 to
22.4 dB: the adapter learned what the critic likes, not what the game looks like. ReFL (Xu et al.
2023, ImageReward) regularises reward feedback learning with the pre-training loss on real data;
this is that term for a world model: EDM's weighted denoising loss of the adapted denoiser on
windows of the dataset the world model was trained on, under their recorded actions. It costs no
reward query, so the aligners still compare at equal queries.
"""

from __future__ import annotations

import numpy as np
import torch

from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.errors import WorldsimError
from worldsim.models.world_model import WorldModel


class DenoisingAnchor:
    """``loss(generator)``: the denoising loss of ``model`` on ``batch_size`` random real windows.

    Args:
        model: the world model being aligned (its denoiser carries the adapter).
        dataset_id: a Minari dataset of the model's game (e.g. its training data,
            ``worldsim/mario-explore-v0``); windows of ``K + 1`` frames, the first ``K`` the context.
        batch_size: windows per loss.
        seed: the windows' draw: update ``u`` of a run with seed ``s`` always draws the same windows,
            so a resumed run anchors as the uninterrupted one would have.
    """

    def __init__(self, model: WorldModel, dataset_id: str, batch_size: int, seed: int = 0):
        k = model.context_length
        self.model, self.batch_size = model, batch_size
        self.game = model.config.game
        self.windows = SequenceDataset(load_dataset(dataset_id), k + 1, self.game.label_keys, pad_start=k - 1)
        if len(self.windows) == 0:
            raise WorldsimError(f"anchor dataset {dataset_id!r} has no window of {k + 1} frames: name a dataset of the model's game")
        frame = self.windows[0]["frames"]
        expected = (model.config.image_size, model.config.image_size, model.config.image_channels)
        if tuple(frame.shape[1:]) != expected:
            raise WorldsimError(
                f"anchor dataset {dataset_id!r} has {tuple(frame.shape[1:])} frames, the world model {expected}: "
                "name a dataset of the model's game"
            )
        self.seed = seed

    def loss(self, update: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The loss at update ``update``: a scalar tensor carrying gradients to the denoiser's
        trainable (LoRA) parameters."""
        device = next(self.model.parameters()).device
        chosen = np.random.default_rng((self.seed, update)).integers(len(self.windows), size=self.batch_size)
        batch = model_batch(stack_windows([self.windows[int(i)] for i in chosen]), self.game, device)
        frames, actions = batch["frames"], batch["actions"]
        k = self.model.context_length
        with torch.enable_grad():
            return self.model.denoiser.loss(
                frames[:, k], frames[:, :k], actions[:, 1:], generator=generator, sampler_sigmas=self.model.sampler.sigmas
            )


__all__ = ["DenoisingAnchor"]
