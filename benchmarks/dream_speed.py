"""Dream steps per second of ``worldsim/Mario-v0`` (or ``--env worldsim/CoopPong-dream-v0``): one env at batch 1, and the vector env at batch N.

Times whole env steps (the denoiser's Euler steps, the end model, quantisation, the numpy frames
returned), with random actions, after a warm-up; reports the median of ``--runs`` timed runs of
``--steps`` steps. Aggregate steps/s for the vector env count every env (N frames per step).

Usage::

    python benchmarks/dream_speed.py [--env worldsim/Mario-v0] [--threads 2] [--batches 1 16 64] [--device cpu] [--checkpoint PATH]

A step of a multi-agent dream is one joint step (every paddle's action, one generated frame).
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch

import worldsim  # noqa: F401  (registers the dream env ids)


def steps_per_second(env_id: str, batch: int, steps: int, runs: int, kwargs: dict) -> float:
    env = gym.make(env_id, **kwargs) if batch == 1 else gym.make_vec(env_id, num_envs=batch, **kwargs)
    env.action_space.seed(0)
    act = env.action_space.sample  # Discrete or MultiDiscrete, batched for the vector env
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
    parser.add_argument("--env", default="worldsim/Mario-v0", help="a dream env id (worldsim/Mario-v0, worldsim/CoopPong-dream-v0)")
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
    print(f"\n{args.env} dream steps/s ({args.threads} CPU threads, median of {args.runs} runs x {args.steps} steps)\n")
    print("| device | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---:|" * len(args.batches))
    for device in devices:
        rates = [steps_per_second(args.env, b, args.steps, args.runs, {**kwargs, "device": device}) for b in args.batches]
        print(f"| {device} | " + " | ".join(f"{rate:.1f}" for rate in rates) + " |")


if __name__ == "__main__":
    main()
