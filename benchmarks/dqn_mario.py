"""DQN on Super Mario Bros World 1-1: CPU training speed, learning curve, and the baselines.

* training speed: a fresh DQN agent (the shipped defaults) on ``worldsim/MarioReal-v0``; env steps/s
  while the replay buffer fills (acting only) and while training (one gradient step of batch 32
  every 4 env steps), with ``--threads`` torch threads;
* learning curve: ``eval.csv`` of a ``worldsim learn`` run (median x_pos over 10 evaluation
  episodes, epsilon 0.05, every 25k steps);
* agents compared on 10 held-out episodes (the ``mario`` env config, seeds 20000-20009, random
  no-op starts; the curve's seeds 10000-10009 chose ``best.zip``, so they are not reused): random,
  scripted, the run's final agent, its best-evaluated one (``best.zip``) when the run kept one, and
  any agent zips in ``--snapshots``.

Prints markdown tables. Usage::

    python benchmarks/dqn_mario.py --run runs/dqn-mario [--snapshots DIR] [--threads 1] [--speed-steps 4000]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from worldsim.agents import make_agent
from worldsim.agents.dqn import DQNAgent
from worldsim.envs import make_env

from worldsim.config import load_config
from worldsim.eval.episodes import evaluate_agent

CURVE_SEED = 10_000  # the seeds `worldsim learn` evaluates on (and picks best.zip by)
HELD_OUT_SEED = 20_000  # the seeds agents are compared on here
EVAL_EPISODES = 10


def training_speed(fill_steps: int, train_steps: int) -> tuple[float, float]:
    """(acting-only steps/s while the buffer fills, training steps/s)."""
    env = make_env("mario")
    agent = DQNAgent(env, seed=0, hyperparameters={"learning_starts": fill_steps})
    start = time.perf_counter()
    agent.learn(env, fill_steps, progress_bar=False)
    fill_rate = fill_steps / (time.perf_counter() - start)
    start = time.perf_counter()
    agent.learn(env, train_steps, progress_bar=False)
    train_rate = train_steps / (time.perf_counter() - start)
    env.close()
    return fill_rate, train_rate


def compare_agents(run: Path | None, snapshots: Path | None) -> list[tuple[str, dict[str, float]]]:
    env = make_env("mario")
    agents = [
        ("random", make_agent("random", env)),
        ("scripted (epsilon 0.05)", make_agent("scripted", env, **load_config("agent", "scripted"))),
    ]
    zips = [("final", run / "agent.zip"), ("best evaluation", run / "best.zip")] if run is not None else []
    zips += [("snapshot", path) for path in sorted(snapshots.glob("*.zip"))] if snapshots is not None else []
    for label, path in zips:
        if path.exists():
            dqn = make_agent("dqn", env, path=path, epsilon=0.05)
            agents.append((f"DQN {label}, {dqn.trained_steps:,} steps (epsilon 0.05)", dqn))
    results = [(name, evaluate_agent(env, agent, EVAL_EPISODES, HELD_OUT_SEED)) for name, agent in agents]
    env.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a `worldsim learn` run folder (eval.csv, agent.zip)")
    parser.add_argument("--snapshots", type=Path, help="a folder of further DQN agent zips to compare")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--fill-steps", type=int, default=2000)
    parser.add_argument("--speed-steps", type=int, default=4000, help="training steps timed after the fill (0: skip the speed measurement)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.speed_steps > 0:
        fill_rate, train_rate = training_speed(args.fill_steps, args.speed_steps)
        print(f"\nDQN training speed on CPU ({args.threads} torch thread(s)): "
              f"{fill_rate:,.0f} env steps/s while the buffer fills, {train_rate:,.0f} env steps/s while training\n")

    if args.run is not None and (args.run / "eval.csv").exists():
        print(f"Learning curve ({args.run / 'eval.csv'}): {EVAL_EPISODES} episodes, seeds {CURVE_SEED}-{CURVE_SEED + EVAL_EPISODES - 1}\n")
        print("| training steps | x_pos median | x_pos max | return median | flag rate |")
        print("|---:|---:|---:|---:|---:|")
        with (args.run / "eval.csv").open() as handle:
            for row in csv.DictReader(handle):
                print(f"| {int(row['steps']):,} | {float(row['x_pos_median']):.0f} | {float(row['x_pos_max']):.0f} "
                      f"| {float(row['return_median']):.0f} | {float(row['flag_rate']):.1f} |")
        print()

    print(f"Agents on World 1-1 ({EVAL_EPISODES} held-out episodes, seeds {HELD_OUT_SEED}-{HELD_OUT_SEED + EVAL_EPISODES - 1}, env config `mario`)\n")
    print("| agent | x_pos median | x_pos max | return median | flag rate |")
    print("|---|---:|---:|---:|---:|")
    for name, metrics in compare_agents(args.run, args.snapshots):
        print(f"| {name} | {metrics['x_pos_median']:.0f} | {metrics['x_pos_max']:.0f} "
              f"| {metrics['return_median']:.0f} | {metrics['flag_rate']:.1f} |")


if __name__ == "__main__":
    main()
