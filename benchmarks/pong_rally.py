"""The scripted pair's rallies in the real Cooperative Pong and in its dreams: length and serve.

A rally is one episode: it ends when a paddle misses (or ``max_cycles`` truncates it). The scripted
pair plays the same seeded episodes in the real game and in each dream; the table gives the mean
rally with its bootstrap interval, the share ended by a miss, and each dream's mean over the real
game's. Rally lengths are long-tailed, so the ratio's interval needs many episodes: about +-20% at
64 a side.

The serve column is the share of episodes whose ball first travels left, toward ``paddle_0``
(read by the pair's own frame parser over the first ``SERVE_STEPS`` steps): a dream started from a
still ball has to guess the serve, and one that always guesses the same way starts every rally at
the same paddle.

Usage::

    python benchmarks/pong_rally.py --checkpoint shipped=worldsim/checkpoints/coop-pong-v3 \
        --episodes 64 --threads 2 --json runs/rally.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from pong_ball_persistence import add_sampling_steps_argument, pong_envs  # benchmarks/, this script's folder
from worldsim.agents import make_agent
from worldsim.agents.scripted_pong import parse_frame

import worldsim  # noqa: F401  (registers the envs)
from worldsim.eval.episodes import run_episode
from worldsim.eval.rally import RallyLengths, rally_table

SERVE_STEPS = 12  # the ball crosses ~20 px in 12 steps: far enough to read its direction, before any paddle


def play(env: gym.Env, agent, seed: int) -> tuple[bool | None, int, bool]:
    """One episode: whether the serve went left (None: ball not found twice), its steps, and whether a miss ended it."""
    balls: list[tuple[float, float]] = []

    def track(frame: np.ndarray) -> None:
        if len(balls) < SERVE_STEPS and (ball := parse_frame(frame).ball) is not None:
            balls.append(ball)

    result = run_episode(env, agent, seed, on_step=track)
    served_left = balls[-1][0] < balls[0][0] if len(balls) >= 2 else None
    return served_left, result.steps, result.terminated


def rallies(env: gym.Env, agent, episodes: int, first_seed: int, name: str) -> tuple[RallyLengths, list[bool | None]]:
    """Rally lengths over seeded episodes, and whether each serve went left."""
    served_left, lengths, ended = zip(*(play(env, agent, seed) for seed in range(first_seed, first_seed + episodes)))
    return RallyLengths(name, list(lengths), list(ended)), list(served_left)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="NAME=PATH of a Cooperative Pong world model (repeatable)")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=30_000, help="first seed (the evaluation's seeds, 30000+, are in no dataset)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write every episode's length, end and serve here")
    add_sampling_steps_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    envs = pong_envs(args.checkpoint, args.sampling_steps)
    print(f"Scripted pair, {args.episodes} episodes from seed {args.seed}, {args.threads} threads.\n")
    rows, serves, report = [], [], {}
    for name, make in envs:
        env = make()
        agent = make_agent("scripted-pong", env)
        started = time.perf_counter()
        row, served_left = rallies(env, agent, args.episodes, args.seed, name)
        env.close()
        seconds = time.perf_counter() - started
        rows.append(row)
        read = [s for s in served_left if s is not None]
        serves.append(f"| {name} | {np.mean(read):.0%} of {len(read)} | {sum(row.lengths) / seconds:.1f} |")
        report[name] = row.to_dict() | {"served_left": served_left, "seconds": seconds}
    print(rally_table(rows))
    print("\n| env | serves to the left (paddle_0) | steps/s |\n|---|---|---|")
    print("\n".join(serves))
    if args.json is not None:
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
