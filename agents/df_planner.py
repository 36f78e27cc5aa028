"""``DiffusionForcingPlanner``: plan a trajectory to the goal with diffusion forcing, track it with PD.

Every ``replan_every`` steps the planner samples a plan of ``plan_steps`` future (state, action)
steps starting at the current state. As in diffusion forcing, the past is a clean token: token 0
holds the last ``frame_stack`` (state, action) steps the episode took (at noise level 0 throughout)
and the plan is the tokens after it, whose first step is pinned to the current state. The causal
network reads the history, so the plan continues the ball's actual motion; pinning the current
state alone into a noisy token does not (the rest of that token ignores it).

* the noise schedule is a pyramid: near tokens are denoised first, far ones stay noisier longer
  (``schedule="full"`` denoises all together, the Diffuser-style ablation); by default pairs of
  neighbouring tokens start together through 8 noise levels, 16 network calls on Large;
* the maze map is known with the env, and the planner uses it (``MazeField``): the goal score is
  minus the summed squared *geodesic* distance of every planned position to the goal (the way
  round the walls), and goal guidance moves every planned position down that distance, on the
  clean estimate (``guidance_through_network=True`` takes its gradient through the causal network
  instead, at twice the cost); ``goal_distance="euclidean"`` with
  ``drop_collisions=False`` is the planner without the map (the ``df-no-map`` ablation);
* Monte-Carlo guidance: ``mc_samples`` plans per episode are sampled together and their guidance
  gradients averaged (``mc_samples=1`` switches it off); the plan kept is the one with the best
  goal score among those that never jump further than the ball can move (``max_jump``) and never
  pass through a wall (``drop_collisions``; if every sample does, each is scored where the ball
  would stop, at its first wall);
* a plan ends where it first reaches the goal (``goal_radius``): from there it waits at the goal;
* a PD controller tracks the planned positions and velocities,
  ``a = clip(p_gain * (p_plan - p) + d_gain * (v_plan - v), -1, 1)`` (``controller="actions"``
  executes the planned actions instead, the other ablation).

``act_batch`` plans for many episodes in one forward pass (the benchmark uses it); ``act`` is the
single-env protocol method.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents.maze_field import BALL_RADIUS, MazeField
from worldsim.agents.waypoint_expert import maze_geometry

from worldsim.core.checkpoint import shipped_checkpoint
from worldsim.data.trajectories import STATE_DIM, STEP_DIM, steps_to_tokens, tokens_to_steps
from worldsim.diffusion.forcing import full_sequence_schedule, pyramid_schedule
from worldsim.errors import WorldsimError
from worldsim.models.trajectory_model import load_trajectory_model

SCHEDULES = ("pyramid", "full")
GOAL_DISTANCES = ("euclidean", "geodesic")
# Goal guidance step size per maze, chosen on the maze bench's seeds 100000-100019 (single task;
# BENCHMARKS.md): UMaze 0.03 / 0.1 scored 129 / 143; Medium 0.1: 100%, 183; Large 0.03 / 0.1:
# 100% / 80%. Stronger guidance gets there sooner where detours are short, and pulls plans into
# dead ends where they are long.
GUIDANCE_SCALES = {"umaze": 0.1, "medium": 0.1, "large": 0.03}
DEFAULT_GUIDANCE_SCALE = 0.03
CONTROLLERS = ("pd", "actions")


class DiffusionForcingPlanner:
    """Diffusion-forcing planner for PointMaze (see the module docstring).

    Args:
        env: the PointMaze env it will act in; its maze must be the checkpoint's.
        path: a planner checkpoint folder (``worldsim train --model df-<maze>`` writes ``OUT/model``);
            by default the planner shipped for the env's maze (``worldsim/checkpoints/df-<maze>-v0``).
        schedule: ``"pyramid"`` or ``"full"``; ``slope``: pyramid steps between neighbouring tokens
            (below 1: neighbouring tokens start together).
        sampling_levels: noise levels a token passes through (None: the checkpoint's); fewer is
            faster, with coarser DDIM steps.
        guidance_scale: step size of the goal guidance (0 switches guidance off); None: the
            maze's own (``GUIDANCE_SCALES``).
        mc_samples: plans sampled per episode for Monte-Carlo guidance (1: off).
        guidance_through_network: take the guidance gradient through the causal network (each
            token feels the goal score of the future it leads to), or on the clean estimate only
            (cheaper).
        replan_every: env steps between plans.
        controller: ``"pd"`` (track the plan) or ``"actions"`` (execute its actions).
        p_gain, d_gain: PD gains; ``lookahead``: which planned step the controller aims at.
        goal_radius: a plan ends where it first comes this close to the goal; the controller then
            holds the ball at the goal.
        goal_distance: ``"euclidean"`` or ``"geodesic"``: how the choice among sampled plans measures
            a planned position's distance to the goal, and which way goal guidance pulls it: geodesic
            is the shortest way round the walls, from the maze map (``MazeField``).
        drop_collisions: drop sampled plans that pass through a wall (kept only if all do).
        wall_margin: how close to a wall a planned position may come (at least the ball's radius,
            0.1; more keeps plans off the corners the tracking controller would cut).
        max_jump: the longest step (in maze units) a plan may take between two consecutive
            positions. The ball moves at most about 0.07 per step; sampled plans jump up to about
            0.4 where tokens meet, and more where they cut through a wall.
        device: ``"cpu"`` or ``"cuda"``; default CUDA when present.
        seed: seeds the sampler's noise (``reset(seed)`` reseeds it; without either, OS entropy).
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | os.PathLike | None = None,
        *,
        schedule: str = "pyramid",
        slope: float = 0.5,
        sampling_levels: int | None = 8,
        guidance_scale: float | None = None,
        mc_samples: int = 16,
        guidance_through_network: bool = False,
        replan_every: int = 10,
        controller: str = "pd",
        p_gain: float = 12.5,
        d_gain: float = 1.2,
        lookahead: int = 1,
        goal_radius: float = 0.2,
        max_jump: float = 0.5,
        goal_distance: str = "geodesic",
        drop_collisions: bool = True,
        wall_margin: float = BALL_RADIUS,
        device: str | None = None,
        seed: int | None = None,
    ):
        maze = getattr(env.unwrapped, "maze_name", None)
        if path is None:
            if maze is None:
                raise WorldsimError(
                    "the diffusion-forcing planner needs a trained checkpoint for this env: pass path=DIR (df_planner.path=DIR)"
                )
            path = shipped_planner(maze)
        if schedule not in SCHEDULES:
            raise WorldsimError(f"unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if goal_distance not in GOAL_DISTANCES:
            raise WorldsimError(f"unknown goal_distance {goal_distance!r}: choose one of {', '.join(GOAL_DISTANCES)}")
        if controller not in CONTROLLERS:
            raise WorldsimError(f"unknown controller {controller!r}: choose one of {', '.join(CONTROLLERS)}")
        if wall_margin < 0 or wall_margin >= 0.5:
            raise WorldsimError(f"wall_margin must be in [0, 0.5) maze units (the ball's radius is {BALL_RADIUS}), got {wall_margin}")
        if (
            mc_samples < 1
            or replan_every < 1
            or slope < 0
            or (guidance_scale or 0) < 0
            or lookahead < 1
            or goal_radius < 0
            or max_jump <= 0
        ):
            raise WorldsimError(
                f"need mc_samples >= 1, replan_every >= 1, slope >= 0, guidance_scale >= 0, lookahead >= 1, goal_radius >= 0, "
                f"max_jump > 0; got {mc_samples}, {replan_every}, {slope}, {guidance_scale}, {lookahead}, {goal_radius}, {max_jump}"
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.config = load_trajectory_model(path, self.device)
        if maze is not None and maze != self.config.maze:
            raise WorldsimError(
                f"checkpoint {path} was trained on the {self.config.maze} maze, the env is {maze}: use a planner trained on {maze}"
            )
        self.normalizer = self.config.normalizer_object()
        if sampling_levels is not None:
            if sampling_levels < 1:
                raise WorldsimError(f"sampling_levels must be a positive number of noise levels, got {sampling_levels}")
            self.model.use_sampling_levels(sampling_levels)
        if guidance_scale is None:
            guidance_scale = GUIDANCE_SCALES.get(self.config.maze, DEFAULT_GUIDANCE_SCALE)
        self.schedule, self.slope, self.guidance_scale = schedule, slope, float(guidance_scale)
        self.mc_samples, self.replan_every, self.controller = mc_samples, replan_every, controller
        self.guidance_through_network = bool(guidance_through_network)
        self.p_gain, self.d_gain, self.lookahead = p_gain, d_gain, lookahead
        self.goal_radius, self.max_jump = float(goal_radius), float(max_jump)
        self.goal_distance, self.drop_collisions = goal_distance, bool(drop_collisions)
        # The maze map, when a choice needs it: geodesic goal distances, wall collisions.
        self.field = MazeField(maze_geometry(env)[0], margin=wall_margin) if goal_distance == "geodesic" or drop_collisions else None
        self._low, self._high = np.asarray(env.action_space.low), np.asarray(env.action_space.high)
        self._generator = torch.Generator(self.device)
        if seed is None:
            self._generator.seed()  # unpredictable until reset(seed=...)
        self.plans: np.ndarray | None = None  # float[N, plan_steps, 6] of the last plan, per episode
        self.history: np.ndarray | None = None  # float[N, frame_stack, 6]: each episode's last steps
        self.plan_seconds: list[float] = []  # wall time of each (batched) replan
        self.reset(seed)

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None, **options: Any) -> DiffusionForcingPlanner:
        if env is None:
            raise WorldsimError("DiffusionForcingPlanner.load needs the env it will act in")
        return cls(env, path, **options)

    # ----------------------------------------------------------------------------- protocol

    def reset(self, seed: int | None = None) -> None:
        """Forget the plans; a seed reseeds the sampler, ``None`` keeps its stream (the protocol's meaning)."""
        if seed is not None:
            self._generator.manual_seed(int(seed))
        self._since_plan: np.ndarray | None = None
        self.plans = self.history = None

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        return self.act_batch([observation])[0]

    # ----------------------------------------------------------------------------- batched

    def act_batch(self, observations: list[dict[str, np.ndarray]], restart: np.ndarray | None = None) -> np.ndarray:
        """Actions ``float32[N, 2]`` for N episodes; ``restart bool[N]`` marks episodes that just
        began (they plan now). Episodes due to replan are planned together in one forward pass."""
        states = np.stack([np.asarray(o["observation"], np.float64) for o in observations])
        goals = np.stack([np.asarray(o["desired_goal"], np.float64) for o in observations])
        n = len(states)
        if self._since_plan is None or len(self._since_plan) != n:
            self._since_plan = np.full(n, self.replan_every)
            self.plans = np.zeros((n, self.config.plan_steps, STEP_DIM))
            self.history = np.zeros((n, self.config.frame_stack, STEP_DIM))
            restart = np.ones(n, bool)
        if restart is not None:
            restart = np.asarray(restart, bool)
            self._since_plan[restart] = self.replan_every
            self.history[restart] = resting_history(states[restart], self.config.frame_stack)
        due = np.flatnonzero(self._since_plan >= self.replan_every)
        if len(due):
            start = time.perf_counter()
            self.plans[due] = self.plan(states[due], goals[due], self.history[due])
            self.plan_seconds.append(time.perf_counter() - start)
            self._since_plan[due] = 0
        k = np.minimum(self._since_plan + self.lookahead, self.config.plan_steps - 1)
        target = self.plans[np.arange(n), k]
        if self.controller == "actions":
            actions = self.plans[np.arange(n), np.minimum(self._since_plan, self.config.plan_steps - 1), STATE_DIM:]
        else:
            actions = self.p_gain * (target[:, :2] - states[:, :2]) + self.d_gain * (target[:, 2:4] - states[:, 2:4])
        self._since_plan += 1
        actions = np.clip(actions, self._low, self._high).astype(np.float32)
        self.history = np.concatenate([self.history[:, 1:], np.concatenate([states, actions], axis=1)[:, None]], axis=1)
        return actions

    def plan(self, states: np.ndarray, goals: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Plans ``float[N, plan_steps, 6]`` (denormalised) from ``states float[N, 4]`` to ``goals float[N, 2]``.

        ``history float[N, frame_stack, 6]``: the (state, action) steps that led to ``states``;
        by default the ball at rest there (as at the start of an episode).
        """
        config, m = self.config, self.mc_samples
        n = len(states)
        tokens, frame_stack = config.num_tokens, config.frame_stack
        levels = self.model.config.sampling_levels
        if self.schedule == "pyramid":
            schedule = pyramid_schedule(tokens, levels, self.slope, first_token_clean=True)
        else:
            schedule = full_sequence_schedule(tokens, levels, first_token_clean=True)
        if history is None:
            history = resting_history(states, frame_stack)
        device = self.device
        state = torch.as_tensor(np.repeat(states, m, axis=0), dtype=torch.float32, device=device)
        goal = torch.as_tensor(np.repeat(goals, m, axis=0), dtype=torch.float32, device=device)
        past = torch.as_tensor(np.repeat(history, m, axis=0), dtype=torch.float32, device=device)
        past_token = steps_to_tokens(self.normalizer.normalize(past), frame_stack)[:, 0]
        now = self.normalizer.normalize(torch.cat([state, torch.zeros_like(state[:, :2])], dim=1))[:, :STATE_DIM]

        def condition(x: torch.Tensor) -> torch.Tensor:
            # Token 0 is the history; the plan's first step is the current state.
            x = x.clone()
            x[:, 0] = past_token
            x[:, 1, :STATE_DIM] = now
            return x

        fields = self.field.towards(np.repeat(goals, m, axis=0), device) if self.goal_distance == "geodesic" else None

        def squared_distances(positions: torch.Tensor, geodesic: bool = False) -> torch.Tensor:
            # float[N * m, T]: how far each planned position is from its goal, squared; geodesic
            # (round the walls) or straight.
            if geodesic:
                return fields.distance(positions) ** 2
            return ((positions - goal[:, None]) ** 2).sum(dim=-1)

        def score(x0: torch.Tensor) -> torch.Tensor:
            positions = self.normalizer.denormalize(tokens_to_steps(x0[:, 1:], frame_stack))[..., :2]
            # Summed over the planned steps (not averaged): the guidance scale is then a step size
            # per planned position, whatever the plan's length.
            if self.goal_distance == "geodesic":
                # Only the gradient matters: minus 2 * distance along the way round the walls, the
                # straight-line score's gradient bent round them. (The geodesic field's own slope
                # is wall_cost times steeper inside walls and would throw plans across the maze.)
                with torch.no_grad():
                    distance, uphill = fields.distance(positions), fields.uphill(positions)
                return -(2 * distance[..., None] * uphill * positions).sum(dim=(-2, -1))
            return -squared_distances(positions).sum(dim=-1)

        x = self.model.sample(
            (n * m, tokens, frame_stack * STEP_DIM),
            schedule,
            condition=condition,
            score=score if self.guidance_scale > 0 else None,
            guidance_scale=self.guidance_scale,
            mc_group=m,
            through_network=self.guidance_through_network,
            generator=self._generator,
            device=device,
        )
        steps = self.normalizer.denormalize(tokens_to_steps(x[:, 1:], frame_stack)).reshape(n, m, config.plan_steps, STEP_DIM)
        # A plan that jumps (a step longer than max_jump) has left the model's dynamics, typically
        # through a wall towards the goal; such unfit plans are kept only if every sample is unfit.
        unfit = (steps[..., 1:, :2] - steps[..., :-1, :2]).norm(dim=-1).amax(dim=-1) > self.max_jump
        steps = stop_at_goal(steps, goal.reshape(n, m, 1, 2), self.goal_radius)
        if self.drop_collisions:
            # A plan through a wall cannot be tracked: the ball would press against the wall. Such
            # plans are dropped, and if all are, scored as where the ball stops: at the wall.
            collides = self.field.collides(steps[..., :2])
            unfit |= collides.any(dim=-1)
            scored = stop_at_wall(steps, collides)
        else:
            scored = steps
        # Keep, per episode, the sampled plan with the best goal score (the one that gets there first).
        geodesic = self.goal_distance == "geodesic"
        distance = squared_distances(scored[..., :2].reshape(n * m, -1, 2), geodesic).reshape(n, m, -1).sum(-1)
        dropped = unfit & ~unfit.all(dim=1, keepdim=True)
        best = torch.where(dropped, torch.inf, distance).argmin(dim=1)
        return steps[torch.arange(n, device=device), best].cpu().numpy().astype(np.float64)


def resting_history(states: np.ndarray, frame_stack: int) -> np.ndarray:
    """``float[N, frame_stack, 6]``: the ball held at ``states float[N, 4]`` with no action, the
    history of an episode that has just begun."""
    steps = np.concatenate([states, np.zeros((len(states), STEP_DIM - STATE_DIM))], axis=1)
    return np.repeat(steps[:, None], frame_stack, axis=1)


def stop_at_goal(steps: torch.Tensor, goals: torch.Tensor, radius: float) -> torch.Tensor:
    """Plans ``float[..., T, 6]`` that end where they first come within ``radius`` of ``goals
    float[..., 1, 2]``: from there on the ball waits at the goal (zero velocity and action).

    The task is to reach the goal and stay, but the data never stays anywhere (the expert is
    given a new goal on arrival), so a sampled plan passes through the goal and goes on.
    """
    inside = ((steps[..., :2] - goals) ** 2).sum(-1) <= radius**2
    arrived = inside.cumsum(-1) > 0  # at or after the first step inside
    waiting = torch.cat([goals.expand(*steps.shape[:-2], steps.shape[-2], 2), torch.zeros_like(steps[..., 2:])], dim=-1)
    return torch.where(arrived[..., None], waiting, steps)


def stop_at_wall(steps: torch.Tensor, collides: torch.Tensor) -> torch.Tensor:
    """Plans ``float[..., T, 6]`` held, from their first step in a wall (``collides bool[..., T]``)
    on, at the last step before it: where a tracking controller leaves the ball."""
    blocked = collides.cumsum(-1) > 0
    last_free = (torch.arange(steps.shape[-2], device=steps.device) * ~blocked).cummax(-1).values
    return torch.gather(steps, -2, last_free[..., None].expand_as(steps))


def shipped_planner(maze: str) -> os.PathLike:
    """The planner checkpoint shipped for ``maze`` (``worldsim/checkpoints/df-<maze>-v0``)."""
    return shipped_checkpoint(f"df-{maze}-v0")
