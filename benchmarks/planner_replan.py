"""Time per replan of the shipped diffusion-forcing maze planners, for one episode and for a batch.

A replan is one call of ``DiffusionForcingPlanner.plan``: the whole pyramid of denoising steps
with goal guidance (the default planner options, ``configs/agent/df_planner.yaml``), for
``mc_samples`` sampled futures per episode, and the choice among them. Episodes
start at the benchmark's first evaluation states (``worldsim bench maze`` seeds); the figure is
the median of ``--runs`` timed calls after a warm-up. Planner options may be overridden to see
what each costs (``--options guidance_through_network=false mc_samples=4``).

Usage::

    python benchmarks/planner_replan.py [--threads 1 2] [--batch 100] [--mazes umaze medium large] [--options k=v ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from worldsim.agents import make_agent

from worldsim.config import load_config
from worldsim.eval.maze_bench import make_eval_env, replan_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=100, help="episodes planned together for the batched figure")
    parser.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--options", nargs="*", default=[], help="planner options as Hydra overrides, key=value")
    args = parser.parse_args(argv)
    overrides = [f"agent.{option}" for option in args.options]
    options = {k: v for k, v in load_config("agent", "df_planner", overrides).items() if k != "path"}
    print(f"\nDiffusion-forcing planner, ms per replan (median of {args.runs}); options: {options}\n")
    print("| maze | plan steps | threads | 1 episode | " + f"{args.batch} episodes |")
    print("|---|---:|---:|---:|---:|")
    for maze in args.mazes:
        env = make_eval_env(maze, "single")
        observations = [env.reset(seed=100_000 + i)[0] for i in range(args.batch)]
        states = np.stack([o["observation"] for o in observations])
        goals = np.stack([o["desired_goal"] for o in observations])
        planner = make_agent("df_planner", env, **options)
        for threads in args.threads:
            torch.set_num_threads(threads)
            single = replan_ms(planner, states[:1], goals[:1], args.runs)
            batched = replan_ms(planner, states, goals, max(1, args.runs // 3))
            print(f"| {maze} | {planner.config.plan_steps} | {threads} | {single:.0f} | {batched:.0f} |", flush=True)
        env.close()


if __name__ == "__main__":
    main()
