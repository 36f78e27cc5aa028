"""``worldsim/Mario-v0``: Super Mario Bros dreamed by a world model, as a Gymnasium env.

``step(action)`` generates the next frame with the diffusion world model and reads the step's
reward and termination from its transition heads; nothing runs the emulator. Spaces, frame format
and episode limit are those of ``worldsim/MarioReal-v0``, so agents move between the two unchanged.

``DreamBatch`` holds what N dreams share (the model, the contexts, the random streams) and steps
them all in one forward pass; ``WorldModelEnv`` is a batch of one, ``WorldModelVectorEnv``
(``envs/dream_vector.py``) a batch of N.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from worldsim.envs.rendering import FrameRenderer

from worldsim.diffusion.sampler import from_uint8, to_uint8
from worldsim.errors import WorldsimError
from worldsim.models.heads import DEATH, FLAG, RUNNING
from worldsim.models.world_model import StartStates, WorldModel, load_world_model
from worldsim.train.checkpoint import shipped_checkpoint as shipped_checkpoint_folder

SHIPPED_CHECKPOINT = "mario-v0"


def shipped_checkpoint(name: str = SHIPPED_CHECKPOINT) -> Path:
    """The shipped Mario world model's folder (by default); see ``worldsim.train.checkpoint.shipped_checkpoint``."""
    return shipped_checkpoint_folder(name)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def context_from_options(
    options: dict[str, Any],
    context_length: int,
    frame_shape: tuple[int, ...],
    num_actions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``options={"frames": uint8[k, H, W, C], "actions": int[k]}`` and make it K long.

    A longer history is cut to its last K; a shorter one is padded in front with its first frame
    and action 0, as the model saw episode starts in training.
    """
    unknown = set(options) - {"frames", "actions", "x_pos"}
    if unknown or "frames" not in options or "actions" not in options:
        raise WorldsimError(
            f"reset options {sorted(options)} not understood: pass options={{'frames': uint8[k, {', '.join(map(str, frame_shape))}], 'actions': int[k]}}"
        )
    frames, actions = np.asarray(options["frames"]), np.asarray(options["actions"])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != frame_shape or len(frames) == 0:
        raise WorldsimError(
            f"options['frames'] is {frames.dtype}{list(frames.shape)}; it must be uint8[k, {', '.join(map(str, frame_shape))}] with k >= 1"
        )
    if not np.issubdtype(actions.dtype, np.integer) or actions.shape != (len(frames),):
        raise WorldsimError(
            f"options['actions'] is {actions.dtype}{list(actions.shape)}; it must be int[{len(frames)}], one action per frame"
        )
    if actions.min() < 0 or actions.max() >= num_actions:
        raise WorldsimError(f"options['actions'] holds {actions.min()}..{actions.max()}; actions are 0..{num_actions - 1}")
    frames, actions = (
        frames[-context_length:],
        actions[-context_length:].astype(np.int64),
    )
    missing = context_length - len(frames)
    if missing:
        frames = np.concatenate([np.repeat(frames[:1], missing, axis=0), frames])
        actions = np.concatenate([np.zeros(missing, np.int64), actions])
    return frames, actions


class DreamBatch:
    """N dreams stepped together: contexts ``float[N, K, C, H, W]`` and the actions that produced them.

    ``actions[i, j]`` is the action whose step produced context frame ``j`` of dream ``i`` (the
    convention of ``reset(options=...)``).
    """

    def __init__(
        self,
        model: WorldModel,
        start_states: StartStates,
        num_envs: int,
        device: torch.device,
    ):
        self.model, self.start_states, self.num_envs, self.device = (
            model,
            start_states,
            num_envs,
            device,
        )
        config = model.config
        shape = (
            num_envs,
            config.context_length,
            config.image_channels,
            config.image_size,
            config.image_size,
        )
        self.frames = torch.zeros(shape, device=device)
        self.actions = torch.zeros(shape[:2], dtype=torch.int64, device=device)
        self.x_pos = np.zeros(num_envs, np.float64)
        self.generator = torch.Generator(device)

    def seed(self, rng: np.random.Generator) -> None:
        """Derive the sampling noise from the env's ``np_random``: same seed, same frames."""
        self.generator.manual_seed(int(rng.integers(2**62)))

    def start(self, index: int, frames: np.ndarray, actions: np.ndarray, x_pos: float) -> None:
        self.frames[index] = from_uint8(torch.from_numpy(frames).to(self.device))
        self.actions[index] = torch.from_numpy(actions).to(self.device)
        self.x_pos[index] = x_pos

    def start_from_bank(self, index: int, rng: np.random.Generator) -> None:
        i = int(rng.integers(len(self.start_states.frames)))
        self.start(
            index,
            self.start_states.frames[i],
            self.start_states.actions[i],
            float(self.start_states.x_pos[i]),
        )

    def observation(self, index: int | slice = slice(None)) -> np.ndarray:
        return to_uint8(self.frames[index, -1]).cpu().numpy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Advance every dream by one step: ``actions int[N]`` -> next frames ``uint8[N, H, W, C]``,
        rewards ``float64[N]``, terminations ``bool[N]`` and per-dream info arrays."""
        step_actions = torch.as_tensor(actions, dtype=torch.int64, device=self.device)
        taken = torch.cat([self.actions[:, 1:], step_actions[:, None]], dim=1)  # the action at each context frame
        next_frames, heads = self.model.predict_step(self.frames, taken, generator=self.generator)
        self.frames = torch.cat([self.frames[:, 1:], next_frames[:, None]], dim=1)
        self.actions = taken
        end = heads["end"].argmax(dim=-1).cpu().numpy()
        self.x_pos += heads["x_delta"].double().cpu().numpy()
        info = {
            "x_pos": self.x_pos.copy(),
            "flag_get": end == FLAG,
            "is_dying": end == DEATH,
            "end_probabilities": torch.softmax(heads["end"].float(), dim=-1).cpu().numpy(),
        }
        return (
            to_uint8(next_frames).cpu().numpy(),
            heads["reward"].double().cpu().numpy(),
            end != RUNNING,
            info,
        )


def dream_spaces(config) -> tuple[spaces.Box, spaces.Discrete]:
    """One dream's observation and action spaces: ``Box(0, 255, (H, W, C), uint8)``, ``Discrete(n)``."""
    frame_shape = (config.image_size, config.image_size, config.image_channels)
    return spaces.Box(0, 255, frame_shape, np.uint8), spaces.Discrete(config.num_actions)


def load_dream(
    checkpoint: str | os.PathLike | None,
    device: str | torch.device | None,
    sampling_steps: int | None,
) -> tuple[WorldModel, StartStates, torch.device]:
    device = torch.device(device) if device is not None else default_device()
    model, start_states, _ = load_world_model(checkpoint if checkpoint is not None else shipped_checkpoint(), device)
    if sampling_steps is not None:
        if sampling_steps < 1:
            raise WorldsimError(f"sampling_steps must be >= 1, got {sampling_steps}")
        from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig

        sampler = SamplerConfig(**{**model.config.sampler.to_dict(), "num_steps": int(sampling_steps)})
        model.sampler = NextFrameSampler(sampler, sigma_data=model.config.edm.sigma_data)
    return model, start_states, device


class WorldModelEnv(gym.Env):
    """Super Mario Bros World 1-1, dreamed frame by frame by a diffusion world model.

    * observation: ``Box(0, 255, (64, 64, 3), uint8)``, the last generated (or given) frame;
    * action: ``Discrete(7)`` (SIMPLE_MOVEMENT), as in ``worldsim/MarioReal-v0``;
    * reward: the transition heads' estimate of the real env's reward (progress, clock, death);
    * terminated: the heads predict that Mario died or reached the flag;
    * truncated: by ``max_episode_steps`` (1000 when made with ``gym.make``);
    * info: ``x_pos`` (start position plus the predicted moves), ``flag_get``, ``is_dying`` and
      ``end_probabilities`` (running, death, flag).

    Args:
        checkpoint: a world model folder (``worldsim train`` writes ``OUT/model``); default: the
            model shipped in the package.
        device: ``"cuda"``, ``"cpu"``...; default CUDA when available.
        render_mode: ``"rgb_array"`` (the frame upscaled ``render_scale`` times) or ``"human"``.
        sampling_steps: Euler steps per frame, overriding the checkpoint's sampler.

    ``reset(seed, options)`` starts from a real context in the checkpoint's bank (chosen with the
    seed), or from ``options={"frames": uint8[k, 64, 64, 3], "actions": int[k]}``, where
    ``actions[i]`` produced ``frames[i]``; the observation is ``frames[-1]``.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        sampling_steps: int | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise WorldsimError(f"render_mode {render_mode!r} is not supported: use one of {self.metadata['render_modes']} or None")
        self.model, self.start_states, self.device = load_dream(checkpoint, device, sampling_steps)
        config = self.model.config
        self.context_length = config.context_length
        self.observation_space, self.action_space = dream_spaces(config)
        self.render_mode, self.render_scale = render_mode, render_scale
        self._dream = DreamBatch(self.model, self.start_states, 1, self.device)
        self._observation: np.ndarray | None = None
        self._renderer = FrameRenderer(render_mode, render_scale, "worldsim: Super Mario Bros (dream)", self.metadata["render_fps"])

    @property
    def action_set(self) -> list[list[str]]:
        """The NES buttons of each action, as in ``worldsim/MarioReal-v0`` (agents such as the
        scripted runner read it)."""
        return [meaning.split(" ") for meaning in self.model.config.action_meanings]

    def get_action_meanings(self) -> list[str]:
        return ["+".join(buttons) for buttons in self.action_set]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._dream.seed(self.np_random)
        if options:
            frames, actions = context_from_options(
                options,
                self.context_length,
                self.observation_space.shape,
                self.action_space.n,
            )
            self._dream.start(0, frames, actions, float(options.get("x_pos", 0.0)))
        else:
            self._dream.start_from_bank(0, self.np_random)
        self._observation = self._dream.observation(0)
        if self.render_mode == "human":
            self.render()
        return self._observation.copy(), {"x_pos": self._dream.x_pos[0].item()}

    def step(self, action):
        if self._observation is None:
            raise WorldsimError("step() before reset(): call env.reset() first")
        if not self.action_space.contains(action):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: pass an int in 0..{self.action_space.n - 1}")
        frames, rewards, terminated, info = self._dream.step(np.array([int(action)]))
        self._observation = frames[0]
        if self.render_mode == "human":
            self.render()
        single_info = {
            "x_pos": info["x_pos"][0].item(),
            "flag_get": bool(info["flag_get"][0]),
            "is_dying": bool(info["is_dying"][0]),
            "end_probabilities": info["end_probabilities"][0],
        }
        return (
            self._observation.copy(),
            float(rewards[0]),
            bool(terminated[0]),
            False,
            single_info,
        )

    def render(self):
        if self._observation is None and self.render_mode is not None:
            raise WorldsimError("render() before reset(): call env.reset() first")
        return self._renderer.render(self._observation)

    def close(self):
        self._renderer.close()
