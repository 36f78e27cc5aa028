"""How much of the diffusion-forcing planner's kept plans lies inside walls, and how far they jump.

The maze bench scores where the ball goes; this looks at the plans themselves. For each planner
setting, ``--episodes`` single-task episodes of the maze bench (seeds ``--seed + i``) are played
for ``--steps`` steps, one env and one planner each; every kept plan is checked against the maze
map (``MazeField.collides``: the ball, radius 0.1, overlapping a wall) and for its longest step
between consecutive positions (the ball moves at most about 0.07 per step). Reported per setting:
the mean share of planned positions inside walls, over the plans made before the ball first
reached the goal and after, the median longest jump of the plans before, and how many episodes
reached the goal.

Usage::

    python benchmarks/planner_plan_walls.py [--maze large] [--episodes 5] [--steps 300] [--settings "" "guidance_scale=0.0" ...]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from worldsim.agents import make_agent
from worldsim.agents.maze_field import MazeField
from worldsim.envs.real.pointmaze import SUCCESS_RADIUS

from worldsim.eval.maze_bench import make_eval_env


def parse(setting: str) -> dict:
    options = {}
    for item in setting.split():
        key, value = item.split("=", 1)
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
        for cast in (int, float):
            try:
                options[key] = cast(value)
                break
            except ValueError:
                continue
    return options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maze", default="large")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["", "guidance_scale=0.0", "guidance_scale=0.01"],
        help="planner options, space-separated key=value",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{args.maze}, single task, {args.episodes} episodes of {args.steps} steps (seeds {args.seed}+i); kept plans:")
    print("| planner options | in walls, before reaching the goal | in walls, after | longest jump before (median) | reached the goal |")
    print("|---|---:|---:|---:|---:|")
    for setting in args.settings:
        before, after, jumps, reached = [], [], [], 0
        for episode in range(args.episodes):
            env = make_eval_env(args.maze, "single")
            field = MazeField(env.unwrapped.maze_map)
            planner = make_agent("df_planner", env, seed=args.seed + episode, **parse(setting))
            observation, _ = env.reset(seed=args.seed + episode)
            arrived = False
            for _ in range(args.steps):
                action = planner.act(observation)
                if planner._since_plan[0] == 1:  # a plan was made for this step
                    plan = torch.as_tensor(planner.plans[0])
                    (after if arrived else before).append(field.collides(plan[:, :2]).float().mean().item())
                    if not arrived:  # after, plans wait at the goal: no jumps to see
                        jumps.append((plan[1:, :2] - plan[:-1, :2]).norm(dim=-1).max().item())
                observation, *_ = env.step(action)
                arrived |= bool(np.linalg.norm(observation["achieved_goal"] - observation["desired_goal"]) <= SUCCESS_RADIUS)
            reached += arrived
            env.close()

        def mean(values):
            return f"{100 * statistics.mean(values):.0f}%" if values else "-"

        print(
            f"| {setting or 'defaults'} | {mean(before)} | {mean(after)} | {statistics.median(jumps):.2f} | {reached}/{args.episodes} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
