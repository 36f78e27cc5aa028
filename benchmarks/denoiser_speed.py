"""How many next frames per second can the denoiser generate on this machine, by architecture?

For each candidate ``FrameUNet`` configuration (untrained weights: speed does not depend on them),
times ``NextFrameSampler.sample`` (context module, U-Net and EDM preconditioning, all Euler steps,
quantisation) at several batch sizes, and reports generated frames per second: the ceiling of
dream env steps/s before env overhead. Median of ``--runs`` timed calls after a warm-up.

Usage::

    python benchmarks/denoiser_speed.py [--threads 2] [--steps 3] [--batches 1 16 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig
from worldsim.models.context import FrameStackContext
from worldsim.models.denoiser import FrameDenoiser
from worldsim.models.frame_unet import FrameUNet, FrameUNetConfig

CONTEXT = 4
CANDIDATES = {
    "diamond (64x4, 2/level)": FrameUNetConfig(block_channels=(64, 64, 64, 64), layers_per_block=2),
    "diamond, space-to-depth 2": FrameUNetConfig(block_channels=(64, 64, 64, 64), layers_per_block=2, space_to_depth=2),
    "64-64-64, 1/level, s2d 2": FrameUNetConfig(block_channels=(64, 64, 64), layers_per_block=1, space_to_depth=2),
    "32-64-64, 1/level, s2d 2": FrameUNetConfig(block_channels=(32, 64, 64), layers_per_block=1, norm_groups=16, space_to_depth=2),
    "32-32-64, 1/level, s2d 2": FrameUNetConfig(block_channels=(32, 32, 64), layers_per_block=1, norm_groups=16, space_to_depth=2),
    "64-96-128, 1/level, s2d 4 (mario-v0)": FrameUNetConfig(block_channels=(64, 96, 128), layers_per_block=1, norm_groups=16, space_to_depth=4),
    "32-64-96-128, 1/level, s2d 2": FrameUNetConfig(block_channels=(32, 64, 96, 128), layers_per_block=1, norm_groups=16, space_to_depth=2),
    "48-96-128, 1/level, s2d 2": FrameUNetConfig(block_channels=(48, 96, 128), layers_per_block=1, norm_groups=16, space_to_depth=2),
}


def frames_per_second(config: FrameUNetConfig, batch: int, steps: int, runs: int) -> float:
    denoiser = FrameDenoiser(FrameStackContext(7, CONTEXT, 3, config.embedding_dim), FrameUNet(config)).eval()
    sampler = NextFrameSampler(SamplerConfig(num_steps=steps))
    frames = torch.rand(batch, CONTEXT, 3, config.image_size, config.image_size) * 2 - 1
    actions = torch.randint(0, 7, (batch, CONTEXT))
    with torch.inference_mode():
        sampler.sample(denoiser, frames, actions)  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            sampler.sample(denoiser, frames, actions)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=3, help="Euler steps per frame")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=None, help="architecture names (substrings) to measure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"\nNext frames per second, {args.steps} Euler steps, {args.threads} torch thread(s), 64x64 RGB, context {CONTEXT}\n")
    print("| architecture | parameters | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|---:|" + "---:|" * len(args.batches))
    for name, config in CANDIDATES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        parameters = sum(p.numel() for p in FrameUNet(config).parameters())
        rates = [frames_per_second(config, batch, args.steps, args.runs) for batch in args.batches]
        print(f"| {name} | {parameters / 1e6:.2f}M | " + " | ".join(f"{rate:.1f}" for rate in rates) + " |")


if __name__ == "__main__":
    main()
