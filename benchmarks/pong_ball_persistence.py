"""Does the dreamed Cooperative Pong keep its ball? Steps with a visible ball, dream against the real game.

PSNR barely notices a missing ball (it is 8 pixels of 4096), yet without one the scripted pair
cannot miss and a rally cannot end. The scripted pair plays seeded episodes in the real game and in
each dream; at every step the pair's own frame parser (``parse_frame``, what the agent acts on) looks
for the ball. Reported per env: the share of steps (up to ``--steps``) with a ball found, and the
first step after which it stays lost for ``--lost-for`` steps (the episode's length if never).

A ball found is not yet a ball kept: a half-trained dream leaves bright crumbs at the paddles' edges
that the parser reads as a ball, still or jumping from paddle to paddle. So a third column counts
only a ball that moves like one: found in this step and the last, and moved between 0.5 and 3
pixels (the real ball moves about 1.6 a step at 64x64).

Usage::

    python benchmarks/pong_ball_persistence.py --checkpoint shipped=worldsim/checkpoints/coop-pong-v3 \
        --episodes 16 --steps 100 --threads 2
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent
from worldsim.agents.scripted_pong import parse_frame

import worldsim  # noqa: F401  (registers the envs)
from worldsim.eval.episodes import run_episode

BALL_STEP_PIXELS = (0.5, 3.0)  # how far a moving ball goes in one step, at 64x64


def ball_positions(env: gym.Env, agent, seed: int, steps: int) -> list[tuple[float, float] | None]:
    """The ball's ``(x, y)`` as the scripted pair's parser finds it after each of the episode's steps (None: not found)."""
    frames: list[np.ndarray] = []
    result = run_episode(env, agent, seed, on_step=frames.append, max_steps=steps)
    played = frames[1 : len(frames) - result.terminated]  # not the reset frame, nor the miss's (no ball by design)
    return [parse_frame(frame).ball for frame in played]


def moving(balls: list[tuple[float, float] | None]) -> np.ndarray:
    """``bool[T]``: whether the ball was found at each step and at the one before, ``BALL_STEP_PIXELS`` apart."""
    low, high = BALL_STEP_PIXELS
    return np.asarray(
        [a is not None and b is not None and low <= np.hypot(b[0] - a[0], b[1] - a[1]) <= high for a, b in zip([None, *balls], balls)],
        bool,
    )


def first_lost(seen: np.ndarray, lost_for: int) -> int:
    """The first step from which the ball is not found for ``lost_for`` steps in a row (else ``len(seen)``)."""
    run = 0
    for step, found in enumerate(seen):
        run = 0 if found else run + 1
        if run == lost_for:
            return step - lost_for + 1
    return len(seen)


def pong_envs(checkpoints: list[str], sampling_steps: list[str] = ()) -> list[tuple[str, Callable[[], gym.Env]]]:
    """``(name, make)`` for the real game, then for each ``NAME=PATH`` checkpoint's dream; a
    ``NAME=N`` in ``sampling_steps`` gives that dream N sampling steps instead of its checkpoint's."""
    steps = {name: int(count) for name, count in (s.split("=", 1) for s in sampling_steps)}
    envs = [("real game", lambda: gym.make("worldsim/CoopPong-v0"))]
    envs += [
        (name, lambda path=path, name=name: gym.make("worldsim/CoopPong-dream-v0", checkpoint=path, sampling_steps=steps.get(name)))
        for name, path in (c.split("=", 1) for c in checkpoints)
    ]
    return envs


def add_sampling_steps_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sampling-steps", action="append", default=[], help="NAME=N: that checkpoint's dream with N sampling steps (repeatable)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="NAME=PATH of a Cooperative Pong world model (repeatable)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lost-for", type=int, default=5)
    parser.add_argument("--seed", type=int, default=30_000)
    parser.add_argument("--threads", type=int, default=2)
    add_sampling_steps_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    envs = pong_envs(args.checkpoint, args.sampling_steps)
    print(
        f"Scripted pair, {args.episodes} episodes from seed {args.seed}, first {args.steps} steps; lost = not found for {args.lost_for} steps.\n"
    )
    print("| env | steps played | ball found | ball found moving | first lost, median (q25-q75) | episodes that lose it |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, make in envs:
        env = make()
        agent = make_agent("scripted-pong", env)
        tracks = [ball_positions(env, agent, args.seed + episode, args.steps) for episode in range(args.episodes)]
        env.close()
        runs = [np.asarray([ball is not None for ball in balls], bool) for balls in tracks]
        moved = np.concatenate([moving(balls) for balls in tracks]).mean()
        lost = np.array([first_lost(seen, args.lost_for) for seen in runs])
        ever = np.mean(lost < np.array([len(seen) for seen in runs]))
        q25, q50, q75 = np.quantile(lost, [0.25, 0.5, 0.75])
        found = np.concatenate(runs).mean()
        print(f"| {name} | {sum(map(len, runs))} | {found:.1%} | {moved:.1%} | {q50:.0f} ({q25:.0f}-{q75:.0f}) | {ever:.0%} |")


if __name__ == "__main__":
    main()
