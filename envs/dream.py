"""``worldsim/Mario-v0``: Super Mario Bros dreamed by a world model, as a Gymnasium env.

``step(action)`` generates the next frame with the diffusion world model and reads the step's
reward and termination from its recurrent end model; nothing runs the emulator. Spaces, frame
format and episode limit are those of ``worldsim/MarioReal-v0``, so agents move between the two
unchanged. The env is a batch of one over ``worldsim.engine.DreamEngine``; ``WorldModelVectorEnv``
(``envs/dream_vector.py``) is a batch of N over the same engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.core.checkpoint import shipped_checkpoint as shipped_checkpoint_folder
from worldsim.core.game import GameDescription
from worldsim.engine import DreamEngine, load_engine_model, parse_reset_options
from worldsim.errors import WorldsimError

SHIPPED_CHECKPOINT = "mario-v0"
DREAM_ENV_ID = "worldsim/Mario-v0"


def shipped_checkpoint(name: str = SHIPPED_CHECKPOINT) -> Path:
    """The shipped Mario world model's folder (by default)."""
    return shipped_checkpoint_folder(name)


def make_dream_env(
    checkpoint: str | os.PathLike | None = None,
    device: str | None = None,
    sampling_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """``gym.make("worldsim/Mario-v0", ...)`` passing only the options given (None: the env's default)."""
    options = {"checkpoint": checkpoint, "device": device, "sampling_steps": sampling_steps}
    return gym.make(DREAM_ENV_ID, **{key: value for key, value in options.items() if value is not None}, **kwargs)


def dream_spaces(config) -> tuple[spaces.Box, spaces.Discrete | spaces.MultiDiscrete]:
    """One dream's observation and action spaces: ``Box(0, 255, (H, W, C), uint8)``, and
    ``Discrete(n)`` or, for a game of several agents, ``MultiDiscrete([n_0, n_1, ...])`` (one
    action per agent, as its real env takes them)."""
    frame_shape = (config.image_size, config.image_size, config.image_channels)
    if config.game.agents:
        return spaces.Box(0, 255, frame_shape, np.uint8), spaces.MultiDiscrete(config.game.action_counts)
    return spaces.Box(0, 255, frame_shape, np.uint8), spaces.Discrete(config.num_actions)


def build_engine(
    checkpoint,
    device,
    sampling_steps,
    num_dreams: int,
    shipped: str = SHIPPED_CHECKPOINT,
    adapter=None,
    adapter_scale: float = 1.0,
    adapter_sigma_max: float | None = None,
) -> DreamEngine:
    """The engine behind a dream front-end: ``checkpoint=None`` is the shipped model ``shipped``;
    ``adapter``: a LoRA adapter folder (``worldsim align``), checked against that model and merged
    at ``adapter_scale`` (1: as trained), at the noise levels ``<= adapter_sigma_max`` only when given."""
    model, start_states, device = load_engine_model(
        checkpoint if checkpoint is not None else shipped_checkpoint(shipped), device, sampling_steps
    )
    if adapter is not None:
        from worldsim.models.lora import apply_adapter

        apply_adapter(model, adapter, scale=adapter_scale, sigma_max=adapter_sigma_max)
    return DreamEngine(model, start_states, num_dreams, device)


def reset_options(engine: DreamEngine, options: dict[str, Any], num_dreams: int | None):
    """``reset(options=...)`` of any front-end, checked against the engine's model."""
    return parse_reset_options(
        options,
        num_dreams=num_dreams,
        context_length=engine.context_length,
        frame_shape=engine.frame_shape,
        num_actions=engine.num_actions,
        progress_label=engine.game.progress_label,
        action_counts=engine.game.action_counts,
    )


def action_set(game: GameDescription) -> list[list[str]]:
    """The buttons of each action as the real env lists them (``[["NOOP"], ["right"], ["right", "A"], ...]``)."""
    return [meaning.split(" ") for meaning in game.action_meanings]


def is_action(action: Any, space: spaces.Discrete | spaces.MultiDiscrete) -> bool:
    """``space.contains(action)``, minus booleans: ``True`` is not action 1."""
    if isinstance(action, bool | np.bool_) or (isinstance(np.asarray(action), np.ndarray) and np.asarray(action).dtype == np.bool_):
        return False
    if isinstance(space, spaces.MultiDiscrete):
        action = np.asarray(action)
        return action.shape == space.shape and np.issubdtype(action.dtype, np.integer) and space.contains(action.astype(space.dtype))
    return space.contains(action)


def action_hint(space: spaces.Discrete | spaces.MultiDiscrete) -> str:
    """What to pass instead of a wrong action, for the one error line."""
    if isinstance(space, spaces.MultiDiscrete):
        return f"pass {len(space.nvec)} ints, one per agent, agent i's in 0..nvec[i] - 1"
    return f"pass an int in 0..{space.n - 1}"


def joint_actions(game: GameDescription, actions: np.ndarray) -> np.ndarray:
    """The engine's action index of each dream: ``int[N]`` as given, or ``int[N, agents]`` joined."""
    return game.joint_action(actions) if game.agents else np.asarray(actions, np.int64)


class WorldModelEnv(gym.Env):
    """Super Mario Bros World 1-1, dreamed frame by frame by a diffusion world model.

    * observation: ``Box(0, 255, (64, 64, 3), uint8)``, the last generated (or given) frame;
    * action: ``Discrete(7)`` (SIMPLE_MOVEMENT), as in ``worldsim/MarioReal-v0``;
    * reward: the end model's estimate of the real env's reward (progress, clock, death);
    * terminated: the end model predicts that Mario died or reached the flag;
    * truncated: by ``max_episode_steps`` (1000 when made with ``gym.make``);
    * info (the same keys and types at reset and at every step): ``x_pos`` (float: start position
      plus the predicted moves), ``is_dying`` and ``flag_get`` (bool: the predicted end), and
      ``end_probabilities`` (``float32[3]``: running, death, flag).

    Args:
        checkpoint: a world model folder (``worldsim train`` writes ``OUT/model``); default: the
            model shipped in the package.
        device: ``"cuda"``, ``"cpu"``...; default CUDA when available.
        render_mode: ``"rgb_array"`` (the frame upscaled ``render_scale`` times) or ``"human"``.
        sampling_steps: Euler steps per frame, overriding the checkpoint's sampler.
        adapter: a LoRA adapter folder written by ``worldsim align`` for this checkpoint, merged into
            its weights (an adapter of another model is an error).
        adapter_scale: how much of the adapter's update to merge (diffusers' ``lora_scale``): 1 as
            trained, 0 the base model.
        adapter_sigma_max: the adapter acts only at the sampler's noise levels <= this (None: at
            all); 1.0 keeps it to the shipped model's last step, the one alignment trains through.
        shipped: the shipped model used when ``checkpoint`` is None (``worldsim/CoopPong-dream-v0``
            registers this class with ``shipped="coop-pong-v3"``). The spaces, info keys and labels
            come from the checkpoint's game: for a game of several agents the action is a
            ``MultiDiscrete``, one action per agent.

    ``reset(seed, options)`` starts from a real context in the checkpoint's bank (chosen with the
    seed), or from ``options={"frames": uint8[k, 64, 64, 3], "actions": int[k]}`` (and optionally
    ``"x_pos"``), where ``actions[i]`` produced ``frames[i]``; the observation is ``frames[-1]``.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        sampling_steps: int | None = None,
        shipped: str = SHIPPED_CHECKPOINT,
        adapter: str | os.PathLike | None = None,
        adapter_scale: float = 1.0,
        adapter_sigma_max: float | None = None,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.engine = build_engine(
            checkpoint,
            device,
            sampling_steps,
            num_dreams=1,
            shipped=shipped,
            adapter=adapter,
            adapter_scale=adapter_scale,
            adapter_sigma_max=adapter_sigma_max,
        )
        self.model, self.device, self.game = self.engine.model, self.engine.device, self.engine.game
        self.context_length = self.engine.context_length
        self.observation_space, self.action_space = dream_spaces(self.model.config)
        self.render_mode, self.render_scale = render_mode, render_scale
        self._observation: np.ndarray | None = None
        self._renderer = FrameRenderer(render_mode, render_scale, f"worldsim: {self.game.name} (dream)", self.metadata["render_fps"])

    @property
    def action_set(self) -> list[list[str]]:
        """The NES buttons of each action, as in ``worldsim/MarioReal-v0`` (the scripted runner reads it)."""
        return action_set(self.game)

    def get_action_meanings(self) -> list[str]:
        return ["+".join(buttons) for buttons in self.action_set]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.engine.seed(self.np_random)
        context = reset_options(self.engine, options, num_dreams=None) if options else None
        self.engine.reset([0], self.np_random, context)
        self._observation = self.engine.observations()[0]
        if self.render_mode == "human":
            self.render()
        return self._observation.copy(), single_info(self.engine.reset_info())

    def step(self, action):
        if self._observation is None:
            raise WorldsimError("step() before reset(): call env.reset() first")
        if not is_action(action, self.action_space):
            raise WorldsimError(f"action {action!r} is not in {self.action_space}: {action_hint(self.action_space)}")
        result = self.engine.step(joint_actions(self.game, np.asarray(action, np.int64)[None]))
        self._observation = result.observations[0]
        if self.render_mode == "human":
            self.render()
        return self._observation.copy(), float(result.rewards[0]), bool(result.terminated[0]), False, single_info(result.info)

    def render(self):
        if self._observation is None and self.render_mode is not None:
            raise WorldsimError("render() before reset(): call env.reset() first")
        return self._renderer.render(self._observation)

    def close(self):
        self._renderer.close()


def single_info(info: dict[str, np.ndarray]) -> dict[str, Any]:
    """One dream's info from the engine's arrays: Python scalars, arrays for vector-valued keys."""
    return {key: value[0].item() if value.ndim == 1 else value[0] for key, value in info.items()}
