"""The world model: next-frame denoiser + sampler + transition heads, built from one config.

``WorldModel.predict_step`` is everything one dream step needs: it samples the next frame for a
batch of contexts and reads the step's reward, progress and end from it. ``WorldModelConfig`` is
what a checkpoint's ``config.json`` stores under ``"model"``; ``load_world_model`` rebuilds the
model from a checkpoint folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldsim.diffusion.edm import EDMTraining, FrameDenoiser
from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig
from worldsim.errors import WorldsimError
from worldsim.models.context import FrameStackContext
from worldsim.models.frame_unet import FrameUNet, FrameUNetConfig
from worldsim.models.heads import HeadsConfig, TransitionHeads
from worldsim.train.checkpoint import Checkpoint, load_checkpoint, load_weights

START_STATES_FILE = "start_states.npz"


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a ``WorldModel`` and to feed it frames the way it was trained."""

    num_actions: int = 7
    context_length: int = 4
    image_size: int = 64
    image_channels: int = 3
    unet: FrameUNetConfig = field(default_factory=FrameUNetConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    edm: EDMTraining = field(default_factory=EDMTraining)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # The real env whose frames and actions the model learned (its preprocessing and action set).
    real_env: dict[str, Any] = field(default_factory=lambda: {"id": "worldsim/MarioReal-v0", "kwargs": {}})
    action_meanings: list[str] = field(default_factory=list)  # NES buttons of each action, space-separated ("right A")

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_actions": self.num_actions,
            "context_length": self.context_length,
            "image_size": self.image_size,
            "image_channels": self.image_channels,
            "unet": self.unet.to_dict(),
            "heads": self.heads.to_dict(),
            "edm": self.edm.to_dict(),
            "sampler": self.sampler.to_dict(),
            "real_env": self.real_env,
            "action_meanings": list(self.action_meanings),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldModelConfig:
        try:
            values = dict(values)
            unet = dict(values.pop("unet", {}))
            unet.setdefault("image_size", values.get("image_size", 64))
            unet.setdefault("image_channels", values.get("image_channels", 3))
            unet["context_channels"] = values.get("context_length", 4) * unet["image_channels"]
            return cls(
                unet=FrameUNetConfig.from_dict({**FrameUNetConfig().to_dict(), **unet}),
                heads=HeadsConfig.from_dict({**HeadsConfig().to_dict(), **values.pop("heads", {})}),
                edm=EDMTraining(**values.pop("edm", {})),
                sampler=SamplerConfig(**values.pop("sampler", {})),
                **values,
            )
        except TypeError as error:
            raise WorldsimError(f"world model config has an unknown or missing field ({error}): check its keys") from error


class WorldModel(nn.Module):
    """Denoiser (context module + U-Net + EDM preconditioning), sampler and transition heads.

    Frames inside the model are ``float[..., C, H, W]`` in ``[-1, 1]``.
    """

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        unet = config.unet
        self.denoiser = FrameDenoiser(
            FrameStackContext(
                config.num_actions,
                config.context_length,
                config.image_channels,
                unet.embedding_dim,
                config.edm.sigma_data,
            ),
            FrameUNet(unet),
            config.edm,
        )
        self.heads = TransitionHeads(
            config.heads,
            config.num_actions,
            config.context_length + 1,
            config.image_channels,
            config.image_size,
        )
        self.sampler = NextFrameSampler(config.sampler, sigma_data=config.edm.sigma_data)

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def forward(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        x_delta: torch.Tensor,
        end_class: torch.Tensor,
        end_class_weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training losses on windows of ``L = K + U`` consecutive real steps (``U >= 1``).

        ``frames float[B, L, C, H, W]``; ``actions int64[B, L]`` (``actions[:, i]`` produced
        ``frames[:, i]``); ``rewards``, ``x_delta float[B, L]`` and ``end_class int64[B, L]`` are
        the labels of the step that produced each frame.

        The denoiser learns the U frames after the first K autoregressively: the first from the
        real context, each later one from a context that ends in the model's own (quantised)
        generations, so it learns to recover from its own errors (DIAMOND's CS:GO unroll). The
        generated frames are drawn without gradient. The heads learn every one of the U steps from
        real frames. Returns ``denoiser``, ``reward``, ``x_delta``, ``end`` losses (scalars).

        It is ``forward`` so that ``accelerate``'s distributed wrapper sees the whole step.
        """
        k = self.context_length
        unroll = frames.shape[1] - k
        if unroll < 1:
            raise ValueError(f"training windows need more than K={k} frames, got {frames.shape[1]}")
        context = frames[:, :k]
        denoiser_loss = frames.new_zeros(())
        for u in range(unroll):
            t = k + u
            step_actions = actions[:, t - k + 1 : t + 1]
            denoiser_loss = denoiser_loss + self.denoiser.loss(frames[:, t], context, step_actions) / unroll
            if u < unroll - 1:
                with torch.no_grad():
                    generated = self.sampler.sample(self.denoiser, context, step_actions)
                context = torch.cat([context[:, 1:], generated[:, None]], dim=1)

        return {"denoiser": denoiser_loss, **self.heads_losses(frames, actions, rewards, x_delta, end_class, end_class_weights)}

    def heads_losses(self, frames, actions, rewards, x_delta, end_class, end_class_weights=None) -> dict[str, torch.Tensor]:
        """The transition heads' losses on every step after the first K of the windows (real frames)."""
        k = self.context_length
        unroll = frames.shape[1] - k
        # Every step after the context is one transition: flatten (B, U) into one batch.
        windows = frames.unfold(1, k + 1, 1)[:, :unroll]  # B, U, C, H, W, K+1
        windows = windows.permute(0, 1, 5, 2, 3, 4).flatten(0, 1)
        heads = self.heads(windows, actions[:, k:].flatten())
        return {
            "reward": nn.functional.smooth_l1_loss(heads["reward"], rewards[:, k:].flatten()),
            "x_delta": nn.functional.smooth_l1_loss(heads["x_delta"], x_delta[:, k:].flatten()),
            "end": nn.functional.cross_entropy(heads["end"], end_class[:, k:].flatten(), weight=end_class_weights),
        }

    @torch.no_grad()
    def predict_step(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One dream step for a batch.

        ``frames float[B, K, C, H, W]``: the context; ``actions int64[B, K]``: the action taken at
        each context frame, the last being the step's action. Returns the next frame ``float[B, C,
        H, W]`` (quantised to 8 bits) and the heads' outputs (``reward``, ``x_delta`` ``float[B]``,
        ``end`` logits ``float[B, 3]``).
        """
        next_frame = self.sampler.sample(self.denoiser, frames, actions, generator=generator)
        heads = self.heads(torch.cat([frames, next_frame[:, None]], dim=1), actions[:, -1])
        return next_frame, heads


@dataclass
class StartStates:
    """Real contexts to start dreams from: ``frames uint8[N, K, H, W, C]``, ``actions int64[N, K]``
    (``actions[:, j]`` produced ``frames[:, j]``) and Mario's ``x_pos float[N]`` at the last frame."""

    frames: np.ndarray
    actions: np.ndarray
    x_pos: np.ndarray

    def save_bytes(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=self.frames, actions=self.actions, x_pos=self.x_pos)
        return buffer.getvalue()


def load_world_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[WorldModel, StartStates, Checkpoint]:
    """Rebuild the model in a checkpoint folder (weights on ``device``, eval mode) and its start states.

    Every problem (missing or corrupted file, weights of another architecture, start states of the
    wrong shape) is one ``WorldsimError`` naming the file.
    """
    checkpoint = load_checkpoint(path, map_location=device)
    if "model" not in checkpoint.config:
        raise WorldsimError(f'checkpoint {checkpoint.path} is not a world model (config.json has no "model" section)')
    config = WorldModelConfig.from_dict(checkpoint.config["model"])
    model = WorldModel(config)
    load_weights(model, checkpoint)
    model.to(device).eval()
    return model, _load_start_states(Path(path) / START_STATES_FILE, config), checkpoint


def _load_start_states(file: Path, config: WorldModelConfig) -> StartStates:
    if not file.is_file():
        raise WorldsimError(f"{file} is missing: a world model checkpoint needs its start states (real contexts for reset)")
    try:
        with np.load(file, allow_pickle=False) as data:
            frames, actions = data["frames"], data["actions"]
            x_pos = data["x_pos"] if "x_pos" in data else np.zeros(len(frames))
    except (OSError, ValueError, KeyError) as error:
        raise WorldsimError(f"{file} is corrupted or incomplete ({error}): train or copy the checkpoint again") from error
    expected = (
        config.context_length,
        config.image_size,
        config.image_size,
        config.image_channels,
    )
    if (
        frames.dtype != np.uint8
        or frames.ndim != 5
        or frames.shape[1:] != expected
        or actions.shape != frames.shape[:2]
        or x_pos.shape != frames.shape[:1]
    ):
        raise WorldsimError(
            f"{file} holds frames {frames.dtype}{list(frames.shape)} and actions {list(actions.shape)}; "
            f"this model needs uint8[N, {', '.join(map(str, expected))}] and int[N, {config.context_length}]"
        )
    if len(frames) == 0:
        raise WorldsimError(f"{file} holds no start states: a world model needs at least one real context for reset")
    return StartStates(frames, actions.astype(np.int64), x_pos.astype(np.float64))
