"""A judge of long dreams for the alignment horizon: a realism critic trained on the base model's long dreams.

The shipped critic (``realism-mario-v0``) was trained against one-step dreams from real contexts and
scores the base model's 1,000-step dreams no lower than those, so it cannot show a dream losing
its realism; and the aligners were trained against it, so it cannot judge them. This trains a
second critic, never used by any aligner: real steps (``--real``) against the steps that the
shipped world model dreams after ``--skip`` steps of its own (``--dreams`` dreams from its start
states, the scripted runner with 20% random actions, never reset, seeds other than the horizon
benchmark's). It is written as a realism checkpoint (``--out``) for
``benchmarks/alignment_horizon.py --critic OUT``, with its accuracy on held-out real steps and on
dreams it did not train on.

Usage::

    python benchmarks/long_dream_critic.py --out runs/align/judge-long [--dreams 16] [--steps 600] [--skip 200] [--train-steps 1500] \\
        [--blur 1.0 --levels 16]   # a judge of blurred, re-quantised frames: blind to the sampler's faint grain
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from long_dreams import real_pairs, scripted_dreams  # benchmarks/, this script's folder
from torch import nn

from worldsim.config import load_config
from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.checkpoint_kinds import REALISM_CRITIC
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict, to_dict
from worldsim.rewards.realism import RealismCritic, RealismCriticConfig


@torch.no_grad()
def long_dream_steps(dreams: int, steps: int, skip: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(previous, next)`` uint8 ``[dreams, steps - skip, H, W, C]`` of the shipped model's dreams after ``skip`` steps."""
    kept = [
        np.stack([previous, dreamed.observations], axis=1)
        for step, (previous, _, dreamed) in enumerate(scripted_dreams(None, dreams, steps, 0.2, seed))
        if step >= skip
    ]
    pairs = torch.from_numpy(np.stack(kept, axis=1))  # [dreams, steps - skip, 2, H, W, C]
    return pairs[:, :, 0], pairs[:, :, 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real", default="worldsim/mario-explore-v0")
    parser.add_argument("--heldout", default="worldsim/mario-video-heldout-v0")
    parser.add_argument("--dreams", type=int, default=16)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument(
        "--blur", type=float, default=0.0, help="judge blurred frames (Gaussian sigma, pixels; saved in the critic's config)"
    )
    parser.add_argument(
        "--levels", type=int, default=0, help="judge frames re-quantised to this many levels (saved in the critic's config)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    previous, dreamed = long_dream_steps(args.dreams, args.steps, args.skip, args.seed)
    held_dreams = max(1, args.dreams // 8)  # whole dreams held out
    fake = torch.stack([previous[held_dreams:].flatten(0, 1), dreamed[held_dreams:].flatten(0, 1)], dim=1)
    fake_heldout = torch.stack([previous[:held_dreams].flatten(0, 1), dreamed[:held_dreams].flatten(0, 1)], dim=1)
    real = real_pairs(args.real, len(fake), args.seed)
    real_heldout = real_pairs(args.heldout, 512, args.seed)
    print(
        f"{len(fake)} dreamed steps (after step {args.skip} of {args.dreams - held_dreams} dreams), {len(real)} real; "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )

    values = {k: v for k, v in load_config("model", "realism-mario", []).items() if k != "kind"} | {
        "blur": args.blur,
        "levels": args.levels,
    }
    config = from_dict(RealismCriticConfig, values, where="model")
    critic = RealismCritic(config)
    optimizer = torch.optim.AdamW(critic.parameters(), lr=1e-3, weight_decay=1e-2)
    bce = nn.functional.binary_cross_entropy_with_logits
    rng = np.random.default_rng(args.seed)
    for step in range(args.train_steps):
        r = from_uint8(real[rng.integers(len(real), size=args.batch)])
        f = from_uint8(fake[rng.integers(len(fake), size=args.batch)])
        real_logits, fake_logits = critic(r[:, 0], r[:, 1]), critic(f[:, 0], f[:, 1])
        loss = bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}: loss {loss.item():.4f}", flush=True)
    critic.eval()
    with torch.no_grad():
        real_h, fake_h = from_uint8(real_heldout), from_uint8(fake_heldout)
        real_acc = float((critic(real_h[:, 0], real_h[:, 1]) > 0).float().mean())
        fake_acc = float(
            torch.cat([(critic(fake_h[i : i + 256, 0], fake_h[i : i + 256, 1]) < 0).float() for i in range(0, len(fake_h), 256)]).mean()
        )
    card = (
        f"# A judge of long dreams (not used by any aligner)\n\n- Real: {args.real}; dreamed: the shipped mario-v0 after step {args.skip} "
        f"of {args.dreams - held_dreams} dreams of {args.steps} steps (seed {args.seed}).\n- {args.train_steps} steps of batch {args.batch}.\n"
        f"- Judges degraded frames: blur {args.blur} px, {args.levels or 'all'} levels (in its config).\n"
        f"- Held out: real steps of {args.heldout} recognised {real_acc:.3f}; {len(fake_h)} steps of {held_dreams} unseen long dreams recognised {fake_acc:.3f}.\n"
    )
    save_checkpoint(args.out, critic, {"kind": REALISM_CRITIC, "critic": to_dict(config)}, files={"README.md": card})
    print(card)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
