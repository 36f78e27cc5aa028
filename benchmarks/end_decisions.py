"""How well a world model calls episode ends (Mario's deaths and flags, Pong's misses), on the real
next frame and on the frame it generates itself, at the exact step.

The two columns separate the two ways a dream can miss a death: the end decision cannot see it
(wrong on real frames too), or the generated frame does not show it (right on real frames only).
Every held-out transition is scored, with the context the dream would have (K real frames, padded
at an episode's start); the generated column is ``worldsim eval``'s teacher-forced end decision.
"Called elsewhere" counts end calls on running steps per 1000 running steps.

Usage::

    python benchmarks/end_decisions.py --dataset worldsim/mario-heldout-v0 \
        --checkpoint old=runs/mario-v0-before --checkpoint new=worldsim/checkpoints/mario-v0 --threads 2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.engine import load_engine_model
from worldsim.eval.fidelity import end_precision_recall, rollout, window_batches


@torch.no_grad()
def real_frame_end_logits(model, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The end logits the model gives the real transition into ``frames[:, -1]`` (window of K + 1)."""
    k = model.context_length
    if model.config.end_classifier is not None:
        return model.end_classifier.last_step(frames, actions[:, -1])
    state = model.start(frames[:, :k], actions[:, :k])
    return model.end_model.step(frames[:, k - 1], frames[:, k], actions[:, k], state)[0]["end"]


def scores(called: np.ndarray, true: np.ndarray, end_class: int) -> tuple[float, float, float]:
    """``worldsim eval``'s precision and recall of ``end_class``, and end calls per 1000 running steps."""
    precision, recall, _ = end_precision_recall(true, called, end_class)
    elsewhere = 1000 * ((called != 0) & (true == 0)).sum() / max(int((true == 0).sum()), 1)
    return precision, recall, elsewhere


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH of a world model (repeatable)")
    parser.add_argument("--dataset", required=True, help="held-out Minari dataset id")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    episodes = None
    print(f"Held-out set: {args.dataset}, every transition, the exact step; precision / recall; end calls per 1000 running steps.\n")
    rows = []
    for name, path in (entry.split("=", 1) for entry in args.checkpoint):
        model, _, _ = load_engine_model(path, "cpu", None)
        k, game = model.context_length, model.config.game
        windows = SequenceDataset(episodes or load_dataset(args.dataset), k + 1, game.label_keys, pad_start=k - 1)
        episodes = windows
        true, on_real, on_generated = [], [], []
        generator = torch.Generator().manual_seed(args.seed)
        for batch in window_batches(windows, np.arange(len(windows)), game, args.batch_size, "cpu", name, progress=True):
            true.append(batch["end_class"][:, -1].numpy())
            on_real.append(real_frame_end_logits(model, batch["frames"], batch["actions"]).argmax(-1).numpy())
            _, outputs = rollout(model, batch["frames"], batch["actions"], 1, generator)
            on_generated.append(outputs["end"][:, 0].argmax(-1).numpy())
        true, on_real, on_generated = map(np.concatenate, (true, on_real, on_generated))
        for end_class, end_name in enumerate(game.end_classes[1:], start=1):
            count = int((true == end_class).sum())
            if not count:
                continue
            real, generated = scores(on_real, true, end_class), scores(on_generated, true, end_class)
            rows.append(
                f"| {name} | {end_name} ({count}) | {real[0]:.3f} / {real[1]:.3f} | {real[2]:.1f} | "
                f"{generated[0]:.3f} / {generated[1]:.3f} | {generated[2]:.1f} |"
            )
    print("| model | end class (count) | real next frame: precision / recall | called elsewhere | generated frame: precision / recall | called elsewhere |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
