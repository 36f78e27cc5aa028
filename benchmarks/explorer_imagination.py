"""Does imagining help an agent? The red-box seeker in MiniWorld's four rooms, with and without the explorer.

Each agent plays the same held-out episodes of the real ``worldsim/MiniWorldPanorama-v0`` (reset
seeds ``seed ..``; 250 steps at most): random play, the seeker choosing blind where it sees no red,
and the seeker imagining a walk in each of four directions first (GenEx's imagination-augmented
policy). Reported: success (the box reached: MiniWorld's termination), the median steps of the
successful episodes, and the imagined walks per episode.

Usage::

    python benchmarks/explorer_imagination.py --explorer runs/explorer-temporal/model --episodes 50 --threads 2
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent  # importing worldsim registers the envs


def play(env: gym.Env, agent, seeds: range) -> dict[str, float]:
    successes, steps, imagined = [], [], []
    for seed in seeds:
        observation, info = env.reset(seed=seed)
        agent.reset(seed=seed)
        for step in range(1, 10_000):
            observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
            if terminated or truncated:
                break
        successes.append(bool(terminated))
        steps.append(step)
        imagined.append(getattr(agent, "imagined", 0))
    won = [s for s, ok in zip(steps, successes, strict=True) if ok]
    return {
        "success": float(np.mean(successes)),
        "median_steps_to_box": float(np.median(won)) if won else float("nan"),
        "imagined_walks_per_episode": float(np.mean(imagined)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explorer", help="explorer checkpoint the imagining seeker uses (without it: random and blind only)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000, help="first reset seed (held out of training's 0..)")
    parser.add_argument("--sampling-steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = gym.make("worldsim/MiniWorldPanorama-v0")
    seeds = range(args.seed, args.seed + args.episodes)
    agents = {
        "random": make_agent("random", env),
        "seeker, blind": make_agent("panorama-seeker", env),
    }
    if args.explorer:
        agents["seeker, imagining"] = make_agent("panorama-seeker", env, explorer=args.explorer, sampling_steps=args.sampling_steps)
    results = {name: play(env, agent, seeds) for name, agent in agents.items()}
    print(f"the red box in MiniWorld's four rooms, {args.episodes} real episodes (seeds {args.seed}+), at most 250 steps")
    print(f"{'agent':<22} {'success':>8} {'median steps (found)':>21} {'imagined walks/episode':>23}")
    for name, result in results.items():
        print(f"{name:<22} {result['success']:>8.2f} {result['median_steps_to_box']:>21.0f} {result['imagined_walks_per_episode']:>23.1f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"command": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
