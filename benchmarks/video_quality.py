"""Quality of video diffusion models at equal parameters and equal training compute.

For each run folder (``worldsim train --model video-<arch> --out RUN``), the finished model
``RUN/model`` is scored on the same held-out clips with the same noise
(``worldsim.eval.video_quality``): EDM's weighted denoising loss and the clean estimate's PSNR at
fixed noise levels, for whole clips and for continuations (the first ``--context`` frames given).
Beside each: parameters, training steps and the CPU minutes they took (from ``RUN/video``'s
training state). An untrained network of the first run's architecture is the trivial baseline
(its denoiser returns ``c_skip * noisy``).

``--strip`` writes a PNG: per model one row of a clip continued from the same real frames (the
first ``overlap`` frames real, outlined in the first row only as a key), above the real clip.

Usage::

    python benchmarks/video_quality.py runs/video/none runs/video/attn runs/video/s6 runs/video/bi-s6 \
        --dataset worldsim/mario-video-heldout-v0 --clips 64 --strip docs/video_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from worldsim.core.checkpoint import load_checkpoint
from worldsim.core.frames import to_uint8
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.eval.video_quality import SIGMAS, denoising_report, heldout_clips
from worldsim.models.video_model import VideoModel, load_video_model
from worldsim.video import write_frame_grid


def training_figures(run: Path) -> tuple[int, float]:
    state = load_checkpoint(run / "video").training_state
    return int(state["step"]), float(state.get("cpu_seconds", state["elapsed_seconds"])) / 60


def strip(models: dict[str, VideoModel], frames: np.ndarray, out: Path, seed: int) -> None:
    """One row per model (a clip continued from the real clip's first ``overlap`` frames) and the
    real clip last; 2x upscaled, a 2-pixel gap between frames."""
    rows, names = [], []
    for name, model in models.items():
        real = model.clips(torch.from_numpy(frames[None]))
        clip = model.generate(real.shape[2], first=real[:, :, : model.config.overlap], generator=torch.Generator().manual_seed(seed))
        rows.append(to_uint8(clip[0].transpose(0, 1)).numpy())
        names.append(name)
    rows.append(to_uint8(real[0].transpose(0, 1)).numpy())
    names.append("real")
    write_frame_grid([list(row) for row in rows], out, scale=2, gap=2)
    print(f"strip rows, top to bottom: {', '.join(names)}; written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of `worldsim train --model video-<arch>`")
    parser.add_argument(
        "--dataset", default="worldsim/mario-video-heldout-v0", help="held-out Minari dataset (episodes no model trained on)"
    )
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--context", type=int, default=8, help="frames given in the continuation setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strip", type=Path, help="write a PNG of continued clips here")
    parser.add_argument("--strip-window", type=int, default=0, help="which held-out clip the strip continues (index among --clips)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = {run.name: load_video_model(run / "model")[0] for run in args.runs}
    first = next(iter(models.values()))
    windows = SequenceDataset(load_dataset(args.dataset), first.config.clip_frames)
    frames = heldout_clips(windows, args.clips)
    print(f"{len(frames)} held-out clips of {first.config.clip_frames} frames from {args.dataset}; noise seed {args.seed}")
    torch.manual_seed(0)
    untrained = VideoModel(first.config).eval()  # its output convolution starts at zero: D = c_skip * noisy

    header = (
        "| model | parameters | steps | CPU min | setting | "
        + " | ".join(f"loss σ={s}" for s in SIGMAS)
        + " | mean loss | "
        + " | ".join(f"PSNR σ={s}" for s in SIGMAS)
        + " |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, model in [("untrained (c_skip x)", untrained), *models.items()]:
        parameters = sum(p.numel() for p in model.denoiser.parameters())
        steps, minutes = training_figures(next(run for run in args.runs if run.name == name)) if name in models else (0, 0.0)
        for setting, context in (("clip", 0), ("continuation", args.context)):
            report = denoising_report(model, frames, context=context, seed=args.seed)
            losses = " | ".join(f"{value:.4f}" for value in report.loss)
            psnrs = " | ".join(f"{value:.2f}" for value in report.psnr)
            print(
                f"| {name} | {parameters / 1e6:.2f} M | {steps} | {minutes:.1f} | {setting} | {losses} | {report.mean_loss:.4f} | {psnrs} |",
                flush=True,
            )
    if args.strip:
        strip(models, frames[args.strip_window].numpy(), args.strip, args.seed)


if __name__ == "__main__":
    main()
