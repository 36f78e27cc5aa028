"""How good is the PointMaze waypoint expert?

For each maze, the expert plays ``--episodes`` single-task episodes under D4RL maze2d's evaluation
protocol: D4RL's goal cell, the registered step limit (300/600/800), ``continuing_task=True`` and
``reset_target=False`` (the episode runs to the limit; the sparse return counts the steps spent
within 0.45 of the goal). Episode ``i`` uses seed ``i`` for both the env and the expert.

The env's own speed is measured by ``benchmarks/env_speed.py``.

Prints a markdown table. Usage::

    python benchmarks/pointmaze_expert.py [--episodes 100] [--action-noise 0.0] [--mazes umaze medium large]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from tqdm import tqdm
from worldsim.agents.waypoint_expert import WaypointExpert
from worldsim.envs import POINTMAZE_IDS

import worldsim  # noqa: F401  (registers the worldsim/PointMaze-* ids)


def evaluate_expert(maze: str, episodes: int, action_noise: float) -> dict[str, float]:
    """Success rate, median steps to first reach (over successes), mean sparse return."""
    env = gym.make(POINTMAZE_IDS[maze], goal_cell="d4rl", continuing_task=True, reset_target=False)
    expert = WaypointExpert(env, action_noise=action_noise)
    successes, first_reach, returns = 0, [], []
    for seed in tqdm(range(episodes), desc=f"{maze} expert", unit="episode", leave=False):
        observation, info = env.reset(seed=seed)
        expert.reset(seed=seed)
        total, reached_at, steps = 0.0, None, 0
        done = False
        while not done:
            observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
            steps += 1
            total += float(reward)
            if reached_at is None and info["success"]:
                reached_at = steps
            done = terminated or truncated
        successes += reached_at is not None
        if reached_at is not None:
            first_reach.append(reached_at)
        returns.append(total)
    env.close()
    return {
        "success": successes / episodes,
        "median_steps": float(np.median(first_reach)) if first_reach else float("nan"),
        "mean_return": float(np.mean(returns)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per maze (seeds 0..N-1)")
    parser.add_argument("--action-noise", type=float, default=0.0, help="std of the expert's Gaussian action noise")
    parser.add_argument("--mazes", nargs="+", default=list(POINTMAZE_IDS), choices=list(POINTMAZE_IDS))
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")

    rows = []
    for maze in args.mazes:
        result = evaluate_expert(maze, args.episodes, args.action_noise)
        rows.append((maze, result))

    print(
        f"\nPointMaze waypoint expert (action noise {args.action_noise:g}; "
        "D4RL goal cell, registered step limit, continuing task)\n"
    )
    print(
        "| maze | episodes | success rate | median steps to first reach | mean sparse return |"
    )
    print("|---|---:|---:|---:|---:|")
    for maze, result in rows:
        print(
            f"| {maze} | {args.episodes} | {100 * result['success']:.0f}% | {result['median_steps']:.0f} "
            f"| {result['mean_return']:.1f} |"
        )


if __name__ == "__main__":
    main()
