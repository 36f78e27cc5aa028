"""``DreamEngine``: N dreams of one world model, each with its context, its actions and its model state.

Every front-end (the Gymnasium env, its vector twin, the PettingZoo env) is a thin layer over this
class; it knows nothing of Gymnasium or of Mario. What it reports besides frames comes from the
game description saved with the checkpoint (``worldsim.core.game``): the progress label it
accumulates (Mario's ``x_pos``), and the info key of each end class (``is_dying``, ``flag_get``).

A dream's state is

* ``frames float[N, K, C, H, W]`` in ``[-1, 1]``: the last K frames (real ones after a reset,
  generated ones after steps);
* ``actions int64[N, K]``: ``actions[i, j]`` is the action whose step produced ``frames[i, j]``;
* ``state``: the model's recurrent state (the end model's LSTM), every tensor ``[N, ...]``;
* ``progress float64[N]``: the game's progress label, start value plus predicted changes;
* ``end_calls int64[N]``: the consecutive steps the end classifier has called an end; a dream
  ends when they reach its ``confirm_steps``.

``reset`` restarts any subset of the dreams from the checkpoint's start bank or from given real
contexts; ``step`` advances all of them with one batched model call. ``step(grad_steps=k)`` runs
the last k sampling steps with gradients (reward-gradient alignment needs them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from worldsim.core.frames import from_uint8, to_uint8
from worldsim.engine.reset_options import ResetContext
from worldsim.errors import WorldsimError
from worldsim.models.world_model import StartStates, WorldModel, load_world_model


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; an unusable device is one ``WorldsimError``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise WorldsimError(f"device {device!r} is not a torch device: use one of {', '.join(available)}") from None
    if resolved.type == "cuda" and (not torch.cuda.is_available() or (resolved.index or 0) >= torch.cuda.device_count()):
        raise WorldsimError(f"device {device!r} is not available on this machine: use one of {', '.join(available)}")
    if resolved.type not in ("cpu", "cuda"):
        raise WorldsimError(f"device {device!r} is not supported: use one of {', '.join(available)}")
    return resolved


def load_engine_model(
    checkpoint: str | os.PathLike, device: str | torch.device | None, sampling_steps: int | None = None
) -> tuple[WorldModel, StartStates, torch.device]:
    """A world model checkpoint on ``device`` (see ``resolve_device``), optionally with another
    number of Euler steps per frame than its config's."""
    device = resolve_device(device)
    model, start_states, _ = load_world_model(checkpoint, device)
    if sampling_steps is not None:
        model.use_sampling_steps(sampling_steps)
    return model, start_states, device


@dataclass
class DreamStep:
    """One step of N dreams: ``frames float[N, C, H, W]`` in ``[-1, 1]`` (carrying gradients when
    asked), ``observations uint8[N, H, W, C]``, ``rewards float64[N]``, ``terminated bool[N]`` and
    ``info`` (each value an array over the N dreams); for a game of several agents that records
    each one's reward, ``agent_rewards float64[N, agents]`` (else None)."""

    frames: torch.Tensor
    observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    info: dict[str, np.ndarray]
    agent_rewards: np.ndarray | None = None


class DreamEngine:
    """N dreams of ``model``, started from ``start_states`` or given contexts, stepped together."""

    def __init__(self, model: WorldModel, start_states: StartStates, num_dreams: int, device: torch.device):
        if num_dreams < 1:
            raise WorldsimError(f"the number of dreams must be >= 1, got {num_dreams}")
        self.model, self.start_states, self.num_dreams, self.device = model, start_states, num_dreams, device
        config = model.config
        self.game = config.game
        self.context_length = config.context_length
        self.frame_shape = (config.image_size, config.image_size, config.image_channels)
        self.num_actions = config.num_actions
        self.frames = torch.zeros((num_dreams, config.context_length, config.image_channels, config.image_size, config.image_size), device=device)
        self.actions = torch.zeros((num_dreams, config.context_length), dtype=torch.int64, device=device)
        self.state = model.initial_state(num_dreams, device)
        self.progress = np.zeros(num_dreams, np.float64)
        self.end_calls = np.zeros(num_dreams, np.int64)  # consecutive steps the end classifier has called an end
        self.confirm_steps = config.end_classifier.confirm_steps if config.end_classifier is not None else 1
        self.generator = torch.Generator(device)

    def seed(self, rng: np.random.Generator) -> None:
        """Derive the sampling noise from a front-end's ``np_random``: same seed, same frames."""
        self.generator.manual_seed(int(rng.integers(2**62)))

    def reset(self, indices: np.ndarray | list[int], rng: np.random.Generator, context: ResetContext | None = None) -> None:
        """Restart the dreams at ``indices``: from ``context`` (one context per index), or from
        contexts of the start bank drawn with ``rng``."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if len(indices) == 0:
            return
        if context is None:
            chosen = rng.integers(len(self.start_states.frames), size=len(indices))
            context = ResetContext(self.start_states.frames[chosen], self.start_states.actions[chosen], self.start_states.progress[chosen])
        index = torch.as_tensor(indices, device=self.device)
        frames = from_uint8(torch.from_numpy(np.ascontiguousarray(context.frames)).to(self.device))
        actions = torch.from_numpy(np.ascontiguousarray(context.actions)).to(self.device)
        with torch.no_grad():
            state = self.model.start(frames, actions)
        # Out of place: the tensors may be part of a graph when the engine runs with gradients.
        self.frames = self.frames.index_copy(0, index, frames)
        self.actions = self.actions.index_copy(0, index, actions)
        self.state = {key: value.index_copy(0, index, state[key]) for key, value in self.state.items()}
        self.progress[indices] = context.progress
        self.end_calls[indices] = 0

    def observations(self, indices: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The last frame of each dream, ``uint8[n, H, W, C]``."""
        return to_uint8(self.frames[indices, -1].detach()).cpu().numpy()

    def reset_info(self, indices: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """The info of freshly reset dreams: the keys and dtypes of ``step``'s, nothing ended."""
        count = len(self.progress[indices])
        running = np.zeros((count, len(self.game.end_classes)), np.float32)
        running[:, 0] = 1.0
        return self._info(self.progress[indices].copy(), np.zeros(count, np.int64), running)

    def _info(self, progress: np.ndarray, end_class: np.ndarray, end_probabilities: np.ndarray) -> dict[str, np.ndarray]:
        info = {self.game.progress_label: progress} if self.game.progress_label else {}
        return info | self.game.info_flags(end_class) | {"end_probabilities": end_probabilities}

    def step(self, actions: np.ndarray | torch.Tensor, grad_steps: int = 0) -> DreamStep:
        """Advance every dream by one step under ``actions int[N]`` (joint action indices in a game
        of several agents: ``GameDescription.joint_action``).

        Gradients flow only when autograd is on and ``grad_steps >= 1`` (through that many of the
        last sampling steps); otherwise the step runs under ``torch.no_grad``.
        """
        step_actions = torch.as_tensor(actions, dtype=torch.int64, device=self.device).reshape(self.num_dreams)
        taken = torch.cat([self.actions[:, 1:], step_actions[:, None]], dim=1)  # the action at each context frame
        with torch.set_grad_enabled(torch.is_grad_enabled() and grad_steps > 0):
            next_frames, outputs, state = self.model.predict_step(self.frames, taken, self.state, self.generator, grad_steps=grad_steps)
        if not (torch.isfinite(next_frames).all() and all(torch.isfinite(value).all() for value in outputs.values())):
            raise WorldsimError(
                "the world model produced non-finite values (NaN or inf): its weights are damaged; copy or train the checkpoint again"
            )
        self.frames = torch.cat([self.frames[:, 1:], next_frames[:, None]], dim=1)
        self.actions, self.state = taken, state
        probabilities = torch.softmax(outputs["end"].detach().float(), dim=-1).cpu().numpy()
        called = probabilities.argmax(axis=-1)
        self.end_calls = np.where(called != 0, self.end_calls + 1, 0)
        end_class = np.where(self.end_calls >= self.confirm_steps, called, 0)  # an end not yet confirmed is still running
        self.progress = self.progress + outputs["progress"].detach().double().cpu().numpy()
        return DreamStep(
            frames=next_frames,
            observations=to_uint8(next_frames.detach()).cpu().numpy(),
            rewards=outputs["reward"].detach().double().cpu().numpy(),
            terminated=end_class != 0,
            info=self._info(self.progress.copy(), end_class, probabilities),
            agent_rewards=outputs["agent_rewards"].detach().double().cpu().numpy() if "agent_rewards" in outputs else None,
        )
