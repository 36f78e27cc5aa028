"""Dream steps per second of ``worldsim/Mario-v0``: one env at batch 1, and the vector env at batch N.

Times whole env steps (the denoiser's Euler steps, the end model, quantisation, the numpy frames
returned), with random actions, after a warm-up; reports the median of ``--runs`` timed runs of
``--steps`` steps. Aggregate steps/s for the vector env count every env (N frames per step).

Usage::

    python benchmarks/dream_speed.py [--threads 2] [--batches 1 16 64] [--device cpu] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers worldsim/Mario-v0)


def steps_per_second(batch: int, steps: int, runs: int, kwargs: dict) -> float:
    rng = np.random.default_rng(0)
    if batch == 1:
        env = gym.make("worldsim/Mario-v0", **kwargs)
        act = lambda: int(rng.integers(env.action_space.n))
    else:
        env = gym.make_vec("worldsim/Mario-v0", num_envs=batch, **kwargs)
        act = lambda: rng.integers(env.single_action_space.n, size=batch)
    env.reset(seed=0)
    for _ in range(3):  # warm-up
        env.step(act())
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(steps):
            env.step(act())  # past an end the single env keeps dreaming; the vector env autoresets
        rates.append(batch * steps / (time.perf_counter() - start))
    env.close()
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cpu, then cuda too when present)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="world model folder (default: the shipped one)",
    )
    parser.add_argument("--sampling-steps", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20, help="timed env steps per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    kwargs = {
        key: value
        for key, value in {
            "checkpoint": args.checkpoint,
            "sampling_steps": args.sampling_steps,
        }.items()
        if value is not None
    }
    print(f"\nworldsim/Mario-v0 dream steps/s ({args.threads} CPU threads, median of {args.runs} runs x {args.steps} steps)\n")
    print("| device | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---:|" * len(args.batches))
    for device in devices:
        rates = [steps_per_second(b, args.steps, args.runs, {**kwargs, "device": device}) for b in args.batches]
        print(f"| {device} | " + " | ".join(f"{rate:.1f}" for rate in rates) + " |")


if __name__ == "__main__":
    main()
