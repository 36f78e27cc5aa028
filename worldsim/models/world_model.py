"""The world model: next-frame denoiser (+ long memory) + sampler + recurrent end model (+ end
classifier), built from one config.

``WorldModel.predict_step`` is everything one dream step needs: it samples the next frame for a
batch of contexts and reads the step's reward, progress and end from it, carrying the end model's
recurrent state. With an end classifier, the end comes from it (it reads the last frames), and
reward and progress from the end model. With a memory (``worldsim.models.frame_memory``), the
denoiser also reads a causal S6 over every frame of the dream, whose state is carried with the end
model's. ``WorldModelConfig`` is what a checkpoint's ``config.json`` stores under
``"model"``; ``load_world_model`` rebuilds the model from a checkpoint folder.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from worldsim.core.checkpoint import Checkpoint, load_checkpoint, load_weights
from worldsim.core.checkpoint_kinds import WORLD_MODEL, require_kind
from worldsim.core.game import GameDescription
from worldsim.core.serialization import from_dict, to_dict
from worldsim.diffusion.edm import EDMTraining
from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig
from worldsim.errors import WorldsimError
from worldsim.models.context import FrameStackContext
from worldsim.models.denoiser import FrameDenoiser
from worldsim.models.end_classifier import EndClassifier, EndClassifierConfig
from worldsim.models.end_model import EndModelConfig, RecurrentEndModel
from worldsim.models.frame_memory import FrameMemory, FrameMemoryConfig
from worldsim.models.frame_unet import FrameUNet, FrameUNetConfig
from worldsim.models.heads import HeadsConfig, TransitionHeads

START_STATES_FILE = "start_states.npz"
FRAME_SIGMA_DATA = 0.5  # context frames are divided by it (DIAMOND), whatever the denoised target's scale


@dataclass
class WorldModelConfig:
    """Everything needed to rebuild a ``WorldModel`` and to feed it frames the way it was trained.

    Exactly one of ``end_model`` (recurrent, DIAMOND's) and ``heads`` (the first shipped model's
    feed-forward transition heads, kept so that its checkpoint still loads) is set.
    ``end_classifier`` (optional, with ``end_model``) decides the episode ends in its place.
    ``memory`` (optional) gives the denoiser a long memory beside its ``context_length`` frames.
    """

    num_actions: int = 7
    context_length: int = 4
    image_size: int = 64
    image_channels: int = 3
    unet: FrameUNetConfig = field(default_factory=FrameUNetConfig)
    end_model: EndModelConfig | None = field(default_factory=EndModelConfig)
    heads: HeadsConfig | None = None
    end_classifier: EndClassifierConfig | None = None
    memory: FrameMemoryConfig | None = None
    edm: EDMTraining = field(default_factory=EDMTraining)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    game: GameDescription = field(default_factory=GameDescription)

    def to_dict(self) -> dict[str, Any]:
        values = to_dict(self)
        for optional in ("end_classifier", "memory"):  # written only when present: configs saved before they existed read back unchanged
            if values[optional] is None:
                del values[optional]
        if values.get("end_classifier", {}).get("confirm_steps") == 1:  # likewise: the default, as before it existed
            del values["end_classifier"]["confirm_steps"]
        if values["unet"].get("mixture_candidates") == 0:  # likewise
            del values["unet"]["mixture_candidates"]
        if values.get("memory", {}).get("view_bank") == 0:  # likewise: no bank, no key size or recall temperature
            del values["memory"]["view_bank"], values["memory"]["key_size"], values["memory"]["recall_temperature"]
        if values.get("memory", {}).get("place_phases") == 0:  # likewise
            del values["memory"]["place_phases"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldModelConfig:
        """From ``config.json``'s ``"model"`` or a Hydra model config; the U-Net's frame size and
        context channels follow the model's, and the first shipped model's layout (``action_meanings``
        and ``real_env`` at the top, feed-forward ``heads``) is read into today's."""
        values = dict(values)
        unet = dict(values.get("unet") or {})
        unet.setdefault("image_size", values.get("image_size", 64))
        unet.setdefault("image_channels", values.get("image_channels", 3))
        memory = values.get("memory") or {}
        memory_channels = memory.get("readout_channels", FrameMemoryConfig.readout_channels) if memory else 0
        view_channels = unet["image_channels"] if memory.get("view_bank") else 0  # the recalled view
        unet["context_channels"] = values.get("context_length", 4) * unet["image_channels"] + memory_channels + view_channels
        values["unet"] = unet
        if values.get("game") is None:
            legacy = {"action_meanings": values.pop("action_meanings", None), "real_env": values.pop("real_env", None)}
            values["game"] = {key: value for key, value in legacy.items() if value}
        if values.get("heads") is not None:
            values.setdefault("end_model", None)
        config = from_dict(cls, values, where="model")
        if config.end_classifier is not None and not 2 <= config.end_classifier.frames <= config.context_length + 1:
            raise WorldsimError(
                f"model.end_classifier.frames is {config.end_classifier.frames}: it reads the step's frame and up to the "
                f"{config.context_length} context frames, so 2..{config.context_length + 1}"
            )
        recalls = config.memory is not None and config.memory.view_bank > 0
        if recalls and config.unet.mixture_candidates != config.context_length + 2:
            raise WorldsimError(
                f"model.unet.mixture_candidates is {config.unet.mixture_candidates}: with model.memory.view_bank the denoiser "
                f"mixes EDM's estimate, its {config.context_length} context frames and the recalled view, so {config.context_length + 2}"
            )
        if recalls and not config.memory.recall_temperature >= 0:
            raise WorldsimError(
                f"model.memory.recall_temperature is {config.memory.recall_temperature}: 1 for the plain softmax recall, "
                "lower for a sharper one, 0 for the best-matching view alone"
            )
        if config.memory is not None and config.memory.place_phases and not (recalls and config.memory.place_phases > 0):
            raise WorldsimError(
                f"model.memory.place_phases is {config.memory.place_phases}: the phases of a place the recall scores a view "
                "bank's frames by, so a count >= 1 with model.memory.view_bank > 0, or 0 for none"
            )
        if not recalls and config.unet.mixture_candidates not in (0, config.context_length + 1):
            raise WorldsimError(
                f"model.unet.mixture_candidates is {config.unet.mixture_candidates}: the denoiser mixes EDM's estimate and its "
                f"{config.context_length} context frames, so {config.context_length + 1} (or 0 for EDM's estimate alone)"
            )
        if config.end_classifier is not None and config.end_classifier.confirm_steps < 1:
            raise WorldsimError(
                f"model.end_classifier.confirm_steps is {config.end_classifier.confirm_steps}: an end is called on at least 1 step"
            )
        if config.end_classifier is not None and config.end_classifier.num_end_classes != len(config.game.end_classes):
            raise WorldsimError(
                f"model.end_classifier.num_end_classes is {config.end_classifier.num_end_classes}, the game has "
                f"{len(config.game.end_classes)} end classes {config.game.end_classes}: make them equal"
            )
        if len(config.game.action_meanings) != config.num_actions:
            raise WorldsimError(
                f"model.game lists {len(config.game.action_meanings)} (joint) actions, the model has num_actions {config.num_actions}: "
                "fix the game section or the dataset"
            )
        return config


State = dict[str, torch.Tensor]  # a model's per-dream recurrent state, every tensor batch-first


class WorldModel(nn.Module):
    """Denoiser (context module + U-Net + EDM preconditioning), sampler and end model.

    Frames inside the model are ``float[..., C, H, W]`` in ``[-1, 1]``; ``actions[:, i]`` is the
    action whose step produced ``frames[:, i]``. The dream engine uses three methods:
    ``initial_state``/``start`` make a dream's recurrent state from its reset context, and
    ``predict_step`` draws the next frame and the step's reward, progress and end.
    """

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        unet = config.unet
        memory = None
        if config.memory is not None:
            memory = FrameMemory(config.memory, config.num_actions, config.image_channels, config.image_size, unet.embedding_dim)
        self.denoiser = FrameDenoiser(
            FrameStackContext(
                config.num_actions,
                config.context_length,
                config.image_channels,
                unet.embedding_dim,
                FRAME_SIGMA_DATA,
                config.game.action_counts,
            ),
            FrameUNet(unet),
            config.edm,
            memory,
        )
        if config.end_model is not None:
            self.end_model = RecurrentEndModel(
                config.end_model, config.num_actions, config.image_channels, config.image_size, len(config.game.agent_reward_keys)
            )
        else:
            self.heads = TransitionHeads(
                config.heads, config.num_actions, config.context_length + 1, config.image_channels, config.image_size
            )
        if config.end_classifier is not None:
            self.end_classifier = EndClassifier(config.end_classifier, config.num_actions, config.image_channels)
        self.sampler = NextFrameSampler(config.sampler, sigma_data=config.edm.sigma_data)

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def use_sampling_steps(self, sampling_steps: int) -> None:
        """Sample with ``sampling_steps`` Karras-spaced Euler steps instead of the config's levels
        (what ``sampling_steps=N`` of the dream envs means); anything but an integer >= 1 is one error."""
        if int(sampling_steps) != sampling_steps or sampling_steps < 1:
            raise WorldsimError(f"sampling_steps must be an integer >= 1, got {sampling_steps!r}")
        karras = dataclasses.replace(self.config.sampler, num_steps=int(sampling_steps), sigmas=None)
        self.sampler = NextFrameSampler(karras, sigma_data=self.config.edm.sigma_data)

    @property
    def recurrent(self) -> bool:
        return self.config.end_model is not None

    @property
    def memory(self) -> FrameMemory | None:
        return self.denoiser.memory

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        state = self.end_model.initial_state(batch, device) if self.recurrent else {}
        return state | (self.memory.initial_state(batch, device) if self.memory is not None else {})

    def start(self, frames: torch.Tensor, actions: torch.Tensor) -> State:
        """A dream's state after its reset context ``frames float[B, K, C, H, W]``, ``actions int64[B, K]``."""
        state = self.end_model.sequence(frames, actions)[1] if self.recurrent else {}
        if self.memory is not None:
            # The memory reads each frame with the action taken at it: the context's frames but the
            # last, whose action is the first step's (``predict_step`` reads it then).
            memory_state = self.memory.initial_state(len(frames), frames.device)
            for j in range(frames.shape[1] - 1):
                memory_state = self.memory.step(frames[:, j], actions[:, j + 1], memory_state)[1]
            state = state | memory_state
        return state

    def predict_step(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        state: State | None = None,
        generator: torch.Generator | None = None,
        grad_steps: int = 0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], State]:
        """One dream step for a batch.

        ``frames float[B, K, C, H, W]``: the context; ``actions int64[B, K]``: the action taken at
        each context frame, the last being the step's action; ``state``: the dreams' recurrent
        state (``start``'s, then this method's). Returns the next frame ``float[B, C, H, W]``
        (quantised to 8 bits), the step's ``reward``, ``progress`` ``float[B]`` and ``end`` logits
        ``float[B, classes]`` (and ``agent_rewards float[B, agents]`` for a game that records them),
        and the new state. ``grad_steps``: sampling steps run with
        gradients when autograd is on (``worldsim.diffusion.sampler``).
        """
        state = state or self.initial_state(len(frames), frames.device)
        denoiser, memory_state = self.denoiser, {}
        if self.memory is not None:
            memory, memory_state = self.memory.step(frames[:, -1], actions[:, -1], state)
            view = self.memory.recalled_view(memory, memory_state) if self.denoiser.recalls_views else None
            denoiser = self.denoiser.remembering(memory, view)
        next_frame = self.sampler.sample(denoiser, frames, actions, generator=generator, grad_steps=grad_steps)
        if self.recurrent:
            outputs, state = self.end_model.step(frames[:, -1], next_frame, actions[:, -1], state)
        else:
            heads = self.heads(torch.cat([frames, next_frame[:, None]], dim=1), actions[:, -1])
            outputs, state = {"reward": heads["reward"], "progress": heads["x_delta"], "end": heads["end"]}, {}
        if self.config.end_classifier is not None:
            outputs = outputs | {"end": self.end_classifier.last_step(torch.cat([frames, next_frame[:, None]], dim=1), actions[:, -1])}
        return next_frame, outputs, state | memory_state


@dataclass
class StartStates:
    """Real contexts to start dreams from: ``frames uint8[N, K, H, W, C]``, ``actions int64[N, K]``
    (``actions[:, j]`` produced ``frames[:, j]``) and the game's progress label (Mario's ``x_pos``)
    ``progress float[N]`` at the last frame."""

    frames: np.ndarray
    actions: np.ndarray
    progress: np.ndarray

    def save_bytes(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=self.frames, actions=self.actions, progress=self.progress)
        return buffer.getvalue()


def load_world_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[WorldModel, StartStates, Checkpoint]:
    """Rebuild the model in a checkpoint folder (weights on ``device``, eval mode) and its start states.

    Every problem (missing or corrupted file, weights of another architecture, start states of the
    wrong shape) is one ``WorldsimError`` naming the file.
    """
    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, WORLD_MODEL, checkpoint.path)
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
            # the first shipped model's file named the progress label after Mario's x_pos
            progress = data["progress"] if "progress" in data else data["x_pos"] if "x_pos" in data else np.zeros(len(frames))
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
        or progress.shape != frames.shape[:1]
    ):
        raise WorldsimError(
            f"{file} holds frames {frames.dtype}{list(frames.shape)} and actions {list(actions.shape)}; "
            f"this model needs uint8[N, {', '.join(map(str, expected))}] and int[N, {config.context_length}]"
        )
    if len(frames) == 0:
        raise WorldsimError(f"{file} holds no start states: a world model needs at least one real context for reset")
    return StartStates(frames, actions.astype(np.int64), progress.astype(np.float64))
