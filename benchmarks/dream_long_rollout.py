"""A long dream without reset: no NaN, flat memory, frames that still look like Mario.

Steps ``worldsim/Mario-v0`` (the raw env, without its time limit) ``--steps`` times from one reset,
never resetting: past a predicted death or flag it keeps dreaming. The scripted runner acts on the
dreamed frames, with ``--epsilon`` random actions. Every ``--every`` steps it records the process's
resident memory, checks that the model's context is finite, and keeps the frame; the kept frames
are written as one image grid (``--samples``) to look at.

Usage::

    python benchmarks/dream_long_rollout.py [--steps 10000] [--samples docs/dream_10k_samples.png]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent

import worldsim  # noqa: F401


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=Path, default=Path("docs/dream_10k_samples.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    env = gym.make("worldsim/Mario-v0").unwrapped
    agent = make_agent("scripted", env, epsilon=args.epsilon)
    observation, info = env.reset(seed=args.seed)
    agent.reset(seed=args.seed)
    kept, memory, ends = [observation], [], 0
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        observation, reward, terminated, _, info = env.step(agent.act(observation, info))
        ends += terminated
        if not np.isfinite(reward) or not torch.isfinite(env.engine.frames).all():
            raise SystemExit(f"non-finite reward or context at step {step}")
        if step % args.every == 0:
            kept.append(observation)
            memory.append(resident_mb())
            print(
                f"step {step:6d}: {step / (time.perf_counter() - start):5.1f} steps/s, resident {memory[-1]:7.1f} MB, predicted ends so far {ends}",
                flush=True,
            )
    print(
        f"\n{args.steps} steps, no NaN; resident memory first/last/max {memory[0]:.1f}/{memory[-1]:.1f}/{max(memory):.1f} MB; "
        f"frame mean/std at the end {observation.mean():.1f}/{observation.std():.1f} (start {kept[0].mean():.1f}/{kept[0].std():.1f})"
    )
    columns = 7
    while len(kept) % columns:
        kept.append(np.zeros_like(kept[0]))
    rows = [np.concatenate(kept[r : r + columns], axis=1) for r in range(0, len(kept), columns)]
    grid = np.concatenate(rows, axis=0).repeat(2, axis=0).repeat(2, axis=1)
    args.samples.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.samples), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {len(kept)} frames (every {args.every} steps, row by row) to {args.samples}")


if __name__ == "__main__":
    main()
