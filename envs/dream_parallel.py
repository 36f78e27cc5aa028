"""A multi-agent game dreamed by a world model, as a PettingZoo ``ParallelEnv``.

Each player of the checkpoint's game (``GameDescription.agents``) is an agent: ``step`` takes one
action per agent, joins them into the joint action the world model was trained on, and generates
the next frame from it in one ``DreamEngine`` call. Every agent observes the whole generated frame
(as in the real game); rewards come from the end model's per-agent reward outputs, and the end
model's predicted episode end terminates every agent at once. ``worldsim.envs.parallel_env(
"worldsim/CoopPong-dream-v0")`` builds it over the shipped Cooperative Pong model.

The Gymnasium view of the same dream (one ``MultiDiscrete`` joint action) is ``WorldModelEnv``
with the same checkpoint: ``gym.make("worldsim/CoopPong-dream-v0")``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from worldsim.envs.dream import build_engine, dream_spaces, is_action, reset_options, single_info
from worldsim.envs.rendering import FrameRenderer, check_render_mode

from worldsim.errors import WorldsimError

COOP_PONG_SHIPPED = "coop-pong-v3"


class DreamParallelEnv(ParallelEnv):
    """The players of a dreamed multi-agent game, stepped together.

    * ``possible_agents``: the game's agents (Cooperative Pong: ``paddle_0``, ``paddle_1``);
    * ``observation_space(agent)``: ``Box(0, 255, (64, 64, 3), uint8)``, the whole generated frame,
      the same for every agent;
    * ``action_space(agent)``: ``Discrete(n_agent)``;
    * rewards: each agent's reward as the end model predicts it (the step's joint reward, shared,
      when the checkpoint's game records no per-agent rewards);
    * terminations: every agent at once, when the end model predicts the episode's end;
      truncations: every agent after ``max_cycles`` steps;
    * infos (the same keys at reset and every step): the dream's info (the game's end flags,
      ``end_probabilities``).

    Args:
        checkpoint: a world model folder of a multi-agent game; default: the shipped model ``shipped``.
        device, sampling_steps, render_mode, render_scale: as for ``worldsim.envs.dream.WorldModelEnv``.
        max_cycles: steps before truncation (PettingZoo's name for it); None: never.
        shipped: the shipped model used when ``checkpoint`` is None.

    ``reset(seed, options)`` starts from a real context of the checkpoint's bank (chosen with the
    seed), or from ``options={"frames": uint8[k, H, W, C], "actions": int[k, agents]}`` (checked as
    in every front-end); options naming neither key are ignored with a warning, as PettingZoo's
    own envs ignore options they do not know.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array", "human"],
        "name": "worldsim_dream_v0",
        "is_parallelizable": True,
        "render_fps": 15,
    }

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
        sampling_steps: int | None = None,
        max_cycles: int | None = 900,
        shipped: str = COOP_PONG_SHIPPED,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.engine = build_engine(checkpoint, device, sampling_steps, num_dreams=1, shipped=shipped)
        self.game = self.engine.game
        if not self.game.agents:
            raise WorldsimError(
                f"the world model's game {self.game.name!r} has one player: use gymnasium.make('worldsim/Mario-v0', checkpoint=...) for it"
            )
        observation_space, joint_space = dream_spaces(self.engine.model.config)
        self.possible_agents = list(self.game.agents)
        self.agents: list[str] = []
        self.observation_spaces = {agent: observation_space for agent in self.possible_agents}
        self.state_space = observation_space
        self.action_spaces = {agent: spaces.Discrete(int(n)) for agent, n in zip(self.possible_agents, joint_space.nvec, strict=True)}
        self.render_mode, self.max_cycles = render_mode, max_cycles
        self._renderer = FrameRenderer(render_mode, render_scale, f"worldsim: {self.game.name} (dream)", self.metadata["render_fps"])
        self._np_random, self._observation, self._steps = None, None, 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        self.engine.seed(self._np_random)
        if options and not {"frames", "actions"} & set(options):
            # PettingZoo's envs take any options and ignore what they do not know (its API test
            # passes {"options": 1}); a context start is checked as strictly as everywhere else.
            warnings.warn(
                f"reset options {sorted(options)} ignored: a dream starts from options={{'frames': ..., 'actions': ...}}", stacklevel=2
            )
            options = None
        context = reset_options(self.engine, options, num_dreams=None) if options else None
        self.engine.reset([0], self._np_random, context)
        self.agents, self._steps = list(self.possible_agents), 0
        self._observation = self.engine.observations()[0]
        if self.render_mode == "human":
            self.render()
        info = single_info(self.engine.reset_info())
        return {agent: self._observation.copy() for agent in self.agents}, {agent: dict(info) for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise WorldsimError("step() with no live agents: call env.reset() first (after reset, and after an episode ends)")
        if set(actions) != set(self.agents):
            raise WorldsimError(f"actions are given for {sorted(actions)}; pass one action for each live agent: {self.agents}")
        for agent, action in actions.items():
            if not is_action(action, self.action_spaces[agent]):
                raise WorldsimError(
                    f"action {action!r} of {agent} is not in {self.action_spaces[agent]}: pass an int in 0..{self.action_spaces[agent].n - 1}"
                )
        joint = self.game.joint_action(np.array([[int(actions[agent]) for agent in self.possible_agents]]))
        result = self.engine.step(joint)
        self._steps += 1
        self._observation = result.observations[0]
        if result.agent_rewards is not None:
            rewards = {agent: float(result.agent_rewards[0, i]) for i, agent in enumerate(self.possible_agents)}
        else:
            rewards = dict.fromkeys(self.possible_agents, float(result.rewards[0]))
        terminated = bool(result.terminated[0])
        truncated = not terminated and self.max_cycles is not None and self._steps >= self.max_cycles
        info = single_info(result.info)
        live = self.agents
        observations = {agent: self._observation.copy() for agent in live}
        out = (
            observations,
            {agent: rewards[agent] for agent in live},
            dict.fromkeys(live, terminated),
            dict.fromkeys(live, truncated),
            {agent: dict(info) for agent in live},
        )
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return out

    def render(self):
        if self._observation is None and self.render_mode is not None:
            raise WorldsimError("render() before reset(): call env.reset() first")
        return self._renderer.render(self._observation)

    def state(self) -> np.ndarray:
        """The global state: the last generated frame (every agent sees all of it)."""
        if self._observation is None:
            raise WorldsimError("state() before reset(): call env.reset() first")
        return self._observation.copy()

    def close(self):
        self._renderer.close()


def coop_pong_dream(**kwargs: Any) -> DreamParallelEnv:
    """``worldsim/CoopPong-dream-v0``: Cooperative Pong dreamed by the shipped model (``checkpoint=`` another)."""
    return DreamParallelEnv(shipped=COOP_PONG_SHIPPED, **kwargs)


__all__ = ["COOP_PONG_SHIPPED", "DreamParallelEnv", "coop_pong_dream"]
