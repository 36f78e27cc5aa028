"""How well does a world model's denoiser denoise, level by level? And what does each sampler make of it?

For held-out next frames, the target the denoiser learns (the change from the last frame, or the
frame) is noised at fixed levels and denoised from the real context and action; the rms error says
whether a level is learnt. A level whose error equals its noise is returned untouched; one whose
error matches the large levels' gives only the conditional mean. Then whole samples are drawn with
1, 2 and 3 explicit levels and scored by PSNR beside copying the last frame.

Reads a training phase's checkpoint (``RUN/denoiser``, EMA weights) or a finished model folder::

    python benchmarks/denoiser_noise_levels.py runs/wm-mario/denoiser [--dataset worldsim/mario-heldout-v0] [--windows 64]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldsim.core.checkpoint import load_checkpoint
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig
from worldsim.eval.fidelity import frame_psnr
from worldsim.models.world_model import WorldModel, WorldModelConfig

LEVELS = (0.05, 0.25, 1.0, 5.0)
SAMPLERS = ([5.0], [5.0, 0.25], [5.0, 0.5, 0.1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="RUN/denoiser (a training phase) or a model folder")
    parser.add_argument("--dataset", default="worldsim/mario-heldout-v0")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    checkpoint = load_checkpoint(args.checkpoint)
    model = WorldModel(WorldModelConfig.from_dict(checkpoint.config["model"])).eval()
    denoiser_weights = {name.removeprefix("denoiser."): value for name, value in checkpoint.weights.items() if name.startswith("denoiser.")}
    model.denoiser.load_state_dict(denoiser_weights)
    game, k = model.config.game, model.context_length
    windows = SequenceDataset(load_dataset(args.dataset), k + 1, game.label_keys, pad_start=k - 1)
    chosen = np.random.default_rng(0).choice(len(windows), min(args.windows, len(windows)), replace=False)
    batch = model_batch(stack_windows([windows[int(i)] for i in chosen]), game)
    context, actions, real = batch["frames"][:, :k], batch["actions"][:, 1:], batch["frames"][:, k]
    step = checkpoint.training_state.get("step", "final")
    print(f"\n{args.checkpoint} (step {step}), {len(chosen)} held-out windows of {args.dataset}\n")
    with torch.no_grad():
        target = model.denoiser.target(real, context)
        generator = torch.Generator().manual_seed(0)
        print(f"| noise level | rms error of the denoised target (target rms {target.pow(2).mean().sqrt():.3f}) |\n|---:|---:|")
        for sigma in LEVELS:
            noisy = target + sigma * torch.randn(target.shape, generator=generator)
            denoised = model.denoiser.denoise(noisy, torch.full((len(target),), sigma), context, actions)
            print(f"| {sigma} | {(denoised - target).pow(2).mean().sqrt():.4f} |")
        print(f"\n| sampler levels | next-frame PSNR |\n|---|---:|\n| copy the last frame | {frame_psnr(context[:, -1], real).mean():.2f} |")
        for levels in SAMPLERS:
            sampler = NextFrameSampler(SamplerConfig(sigmas=levels), sigma_data=model.config.edm.sigma_data)
            sample = sampler.sample(model.denoiser, context, actions, generator=torch.Generator().manual_seed(0))
            print(f"| {levels} | {frame_psnr(sample, real).mean():.2f} |")


if __name__ == "__main__":
    main()
