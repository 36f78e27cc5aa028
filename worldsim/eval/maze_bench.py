"""``worldsim bench maze``: planners beside the oracle and random play on PointMaze, in one run.

Protocol (D4RL maze2d, on Gymnasium-Robotics' PointMaze v3):

* single-task: the goal is D4RL's goal cell of the maze; multi-task: a random goal cell per
  episode. Both are continuing tasks without new goals: an episode lasts the D4RL horizon
  (300 / 600 / 800 steps) and the sparse reward counts the steps spent within 0.45 of the goal.
* fixed evaluation seeds: episode ``i`` resets with seed ``seed + i`` (start cell and, multi-task,
  goal), the same for every method.
* metrics per method: success rate (the goal reached at least once), median steps to first reach
  (over successful episodes), mean sparse return, D4RL-normalised score
  ``100 * (R - min) / (max - min)`` with D4RL maze2d's reference returns (approximate here: the
  Gymnasium-Robotics env's success radius is 0.45, D4RL's 0.5), and the planner's time per replan.

All episodes of one method run in lockstep, so the planner plans all of them in one forward pass.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from worldsim.envs import POINTMAZE_IDS
from worldsim.errors import WorldsimError

# Methods of ``worldsim bench maze``: planner options over the agent config, or None for a non-planner.
METHODS: dict[str, dict | None] = {
    "df": {},  # the full planner: pyramid schedule, Monte-Carlo guidance, PD tracking
    "df-full-sequence": {"schedule": "full"},  # Diffuser-style: all tokens denoised together
    "df-no-mc": {"mc_samples": 1},
    "df-actions": {"controller": "actions"},  # execute the planned actions instead of tracking
    # The planner without the maze map: straight-line goal distance, plans through walls kept.
    "df-no-map": {"goal_distance": "euclidean", "drop_collisions": False},
    "waypoint": None,  # the oracle: shortest path over cells, noiseless
    "random": None,
}

# D4RL maze2d reference returns (min: random policy, max: the D4RL expert) for the normalised score.
D4RL_REFERENCE_RETURNS = {"umaze": (23.85, 161.86), "medium": (13.13, 277.39), "large": (6.7, 273.99)}
TASKS = ("single", "multi")

# act(observations: list of dict observations, restart: bool[N]) -> float32[N, 2]
BatchPolicy = Callable[[list[dict[str, np.ndarray]], np.ndarray], np.ndarray]


@dataclass
class MazeResult:
    method: str
    maze: str
    task: str
    episodes: int
    success_rate: float
    steps_to_reach_median: float
    sparse_return_mean: float
    normalized_score_mean: float
    normalized_score_stderr: float
    replan_ms_batched: float | None = None  # one replan of all episodes together
    replan_ms_single: float | None = None  # one replan of a single episode
    paths: list[np.ndarray] = field(default_factory=list, repr=False)  # xy per step, for plots

    def to_dict(self) -> dict:
        values = asdict(self)
        values.pop("paths")
        return values


def make_eval_env(maze: str, task: str, **kwargs) -> gym.Env:
    if maze not in POINTMAZE_IDS:
        raise WorldsimError(f"unknown maze {maze!r}: choose one of {', '.join(POINTMAZE_IDS)}")
    if task not in TASKS:
        raise WorldsimError(f"unknown task {task!r}: choose single or multi")
    goal_cell = "d4rl" if task == "single" else None
    return gym.make(POINTMAZE_IDS[maze], goal_cell=goal_cell, continuing_task=True, reset_target=False, **kwargs)


def run_policy(method: str, maze: str, task: str, policy: BatchPolicy, episodes: int, seed: int, progress: bool = True) -> MazeResult:
    """Play ``episodes`` evaluation episodes in lockstep with ``policy`` and score them."""
    from worldsim.envs.real.pointmaze import SUCCESS_RADIUS  # here: gymnasium-robotics (MuJoCo) is slow to import

    envs = [make_eval_env(maze, task) for _ in range(episodes)]
    observations = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    horizon = envs[0].spec.max_episode_steps
    returns = np.zeros(episodes)
    first_reach = np.full(episodes, -1)
    paths = [[o["observation"][:2].copy()] for o in observations]
    restart = np.ones(episodes, bool)
    for t in tqdm(range(horizon), desc=f"{maze} {task} {method}", disable=not progress, unit="step", leave=False):
        actions = policy(observations, restart)
        restart[:] = False
        for i, env in enumerate(envs):
            observations[i], reward, _, _, _ = env.step(actions[i])
            returns[i] += reward
            paths[i].append(observations[i]["observation"][:2].copy())
            reached = np.linalg.norm(observations[i]["achieved_goal"] - observations[i]["desired_goal"]) <= SUCCESS_RADIUS
            if reached and first_reach[i] < 0:
                first_reach[i] = t + 1
    for env in envs:
        env.close()
    low, high = D4RL_REFERENCE_RETURNS[maze]
    scores = 100 * (returns - low) / (high - low)
    reached = first_reach > 0
    return MazeResult(
        method=method,
        maze=maze,
        task=task,
        episodes=episodes,
        success_rate=float(reached.mean()),
        steps_to_reach_median=float(np.median(first_reach[reached])) if reached.any() else float("nan"),
        sparse_return_mean=float(returns.mean()),
        normalized_score_mean=float(scores.mean()),
        normalized_score_stderr=float(scores.std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else 0.0,
        paths=[np.array(p) for p in paths],
    )


def per_episode_policy(make_agent_for_env: Callable[[gym.Env], object], maze: str, task: str, episodes: int, seed: int) -> BatchPolicy:
    """A batch policy from one protocol agent per episode (the waypoint expert, random actions)."""
    env = make_eval_env(maze, task)
    agents = [make_agent_for_env(env) for _ in range(episodes)]

    def act(observations, restart):
        for i in np.flatnonzero(restart):
            agents[i].reset(seed=seed + int(i))
        return np.stack([agent.act(o) for agent, o in zip(agents, observations, strict=True)])

    return act


def replan_ms(planner, states: np.ndarray, goals: np.ndarray, repeats: int = 5) -> float:
    """Median wall time in ms of ``planner.plan(states, goals)`` (after a warm-up)."""
    planner.plan(states, goals)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        planner.plan(states, goals)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def results_table(results: list[MazeResult]) -> str:
    lines = [
        "| maze | task | method | success | steps to goal (median) | sparse return | D4RL-normalised score (approx.) | replan ms (1 episode / all) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        timing = "" if r.replan_ms_single is None else f"{r.replan_ms_single:.0f} / {r.replan_ms_batched:.0f}"
        lines.append(
            f"| {r.maze} | {r.task} | {r.method} | {100 * r.success_rate:.0f}% | {r.steps_to_reach_median:.0f} | "
            f"{r.sparse_return_mean:.1f} | {r.normalized_score_mean:.1f} ± {r.normalized_score_stderr:.1f} | {timing} |"
        )
    return "\n".join(lines)


def results_json(results: list[MazeResult]) -> str:
    """The results as strict JSON: a non-finite number (the median steps to the goal of a method
    that never reached it is NaN) is written as null, since ``NaN`` is not JSON and strict
    parsers (``json.loads(..., parse_constant=...)``, JavaScript, jq) reject it."""

    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(v) for key, v in value.items()}
        if isinstance(value, list | tuple):
            return [finite(v) for v in value]
        return value

    return json.dumps([finite(r.to_dict()) for r in results], indent=2, allow_nan=False)


# Path colours (RGB) in method order; plans are red, the goal green.
PATH_COLOURS = [(30, 90, 230), (240, 140, 20), (150, 60, 200), (20, 160, 160), (140, 90, 40), (110, 110, 110), (220, 60, 160)]


def draw_episode(
    maze: str,
    paths: dict[str, np.ndarray] | np.ndarray,
    plans: list[np.ndarray],
    goal: np.ndarray,
    file,
    pixels_per_cell: int = 48,
    plans_label: str = "plans",
) -> None:
    """A PNG of the maze (walls dark), each method's path (``{method: xy[T, 2]}``; one array is
    drawn as "path"), each in its own colour, the plans made along the episode (thin red, later
    ones brighter), the goal (green), and a legend below the maze naming them."""
    import cv2

    from worldsim.envs.real.pointmaze import MAZE_MAPS

    if isinstance(paths, np.ndarray):
        paths = {"path": paths}
    maze_map = np.array([[cell == 1 for cell in row] for row in MAZE_MAPS[maze]])
    rows, cols = maze_map.shape
    image = np.full((rows * pixels_per_cell, cols * pixels_per_cell, 3), 255, np.uint8)
    for r, c in np.argwhere(maze_map):
        image[r * pixels_per_cell : (r + 1) * pixels_per_cell, c * pixels_per_cell : (c + 1) * pixels_per_cell] = 60

    def to_pixels(xy: np.ndarray) -> np.ndarray:
        # PointMaze: x grows with the column, y with decreasing row; the maze is centred on (0, 0).
        col = xy[:, 0] + cols / 2
        row = rows / 2 - xy[:, 1]
        return np.stack([col * pixels_per_cell, row * pixels_per_cell], axis=1).round().astype(np.int32)

    for i, plan in enumerate(plans):
        shade = int(120 + 135 * (i + 1) / max(len(plans), 1))
        cv2.polylines(image, [to_pixels(plan[:, :2])], False, (shade, 40, 40), 1, cv2.LINE_AA)
    legend: list[tuple[str, tuple[int, int, int], str]] = []  # (label, colour, marker)
    if plans:
        legend.append((plans_label, (255, 40, 40), "line"))
    for k, (name, path) in enumerate(paths.items()):
        colour = PATH_COLOURS[k % len(PATH_COLOURS)]
        cv2.polylines(image, [to_pixels(path)], False, colour, 2, cv2.LINE_AA)
        cv2.circle(image, tuple(int(v) for v in to_pixels(path[:1])[0]), 5, colour, -1, cv2.LINE_AA)
        legend.append((name, colour, "line"))
    cv2.circle(image, tuple(int(v) for v in to_pixels(goal[None])[0]), int(0.45 * pixels_per_cell), (40, 180, 40), 2, cv2.LINE_AA)
    legend.append(("goal", (40, 180, 40), "circle"))

    line_height = 16
    strip = np.full((len(legend) * line_height + 8, image.shape[1], 3), 255, np.uint8)
    for i, (label, colour, marker) in enumerate(legend):
        y = 4 + i * line_height + line_height // 2
        if marker == "circle":
            cv2.circle(strip, (16, y), 5, colour, 2, cv2.LINE_AA)
        else:
            cv2.line(strip, (6, y), (26, y), colour, 2, cv2.LINE_AA)
        cv2.putText(strip, label, (34, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(file), cv2.cvtColor(np.concatenate([image, strip]), cv2.COLOR_RGB2BGR))


def run_benchmark(
    maze: str = "umaze",
    *,
    planner: str | os.PathLike | None = None,
    methods: Sequence[str] = ("df", "df-full-sequence", "waypoint", "random"),
    tasks: Sequence[str] = TASKS,
    episodes: int = 100,
    seed: int = 100_000,
    out: str | os.PathLike = "runs/bench-maze",
    overrides: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[MazeResult]:
    """``worldsim bench maze``: every method on every task, ``episodes`` seeded episodes each.

    ``planner`` is the planner folder of the df methods (default: the one shipped for ``maze``);
    ``overrides`` (``df_planner.guidance_scale=0.2``) change its config. Writes ``results.md``,
    ``results.json`` and a picture of episode 0 per method and per task into ``out``.
    """
    from worldsim.agents import make_agent
    from worldsim.config import load_config

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise WorldsimError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    planner_methods = [m for m in methods if METHODS[m] is not None]
    if planner_methods and planner is None:
        from worldsim.agents.df_planner import shipped_planner

        planner = shipped_planner(maze)
    if episodes < 1:
        raise WorldsimError(f"--episodes must be positive, got {episodes}")
    overrides = [f"agent.{o.split('.', 1)[1]}" if o.startswith("df_planner.") else o for o in overrides]
    if any(not o.startswith("agent.") for o in overrides):
        raise WorldsimError(f"overrides {list(overrides)} must look like df_planner.guidance_scale=0.2")
    planner_config = {k: v for k, v in load_config("agent", "df_planner", overrides).items() if k != "path"}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for task in tasks:
        env = make_eval_env(maze, task)
        first, _ = env.reset(seed=seed)  # episode 0's start: the single-episode replan and the plot
        paths_of_task: dict[str, np.ndarray] = {}  # episode 0 of every method, for one picture
        plans_of_task: dict[str, list] = {}
        for method in methods:
            options = METHODS[method]
            if options is None:
                name = "waypoint" if method == "waypoint" else "random"
                extra = {"action_noise": 0.0} if method == "waypoint" else {}
                policy = per_episode_policy(lambda e, n=name, x=extra: make_agent(n, e, **x), maze, task, episodes, seed)
                result = run_policy(method, maze, task, policy, episodes, seed, progress=progress)
            else:
                agent = make_agent("df_planner", env, path=planner, **{**planner_config, **options}, seed=seed)
                first_plans: list = []

                def policy(observations, restart, agent=agent, first_plans=first_plans):
                    replans = len(agent.plan_seconds)
                    actions = agent.act_batch(observations, restart)
                    if len(agent.plan_seconds) > replans:
                        first_plans.append(agent.plans[0].copy())
                    return actions

                result = run_policy(method, maze, task, policy, episodes, seed, progress=progress)
                result.replan_ms_batched = 1000 * statistics.median(agent.plan_seconds)
                result.replan_ms_single = replan_ms(agent, first["observation"][None], first["desired_goal"][None])
                picture = out / f"{maze}-{task}-{method}-episode0.png"
                draw_episode(maze, {method: result.paths[0]}, first_plans, first["desired_goal"], picture, plans_label=f"{method} plans")
                plans_of_task.setdefault(method, first_plans)
            paths_of_task[method] = result.paths[0]
            results.append(result)
            log(f"{task:6s} {method:18s} success {100 * result.success_rate:5.1f}%  score {result.normalized_score_mean:6.1f}")
        # Every method's episode 0 in one picture, with the first planner method's plans.
        plan_method = next(iter(plans_of_task), None)
        draw_episode(
            maze,
            paths_of_task,
            plans_of_task.get(plan_method, []),
            first["desired_goal"],
            out / f"{maze}-{task}-episode0.png",
            plans_label=f"{plan_method} plans",
        )
    table = results_table(results)
    log("\n" + table)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(results_json(results) + "\n")
    log(f"\nwrote {out / 'results.md'}, results.json and plots of episode 0")
    return results
