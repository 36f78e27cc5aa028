"""What a judge of long dreams reads, and how rigidly the dream moves its ground.

Two measurements behind the alignment section of BENCHMARKS.md:

* **Where the judge looks**: long-dream steps (the shipped world model after ``--skip`` steps of its
  own, the scripted runner with 20% random actions, as ``long_dream_critic.py`` plays them, another
  seed) against real held-out steps. For each band of 16 rows, the band of both frames of a dreamed
  step is replaced by that band of a real step, and the judge's median logit is reported: the band
  that turns "dreamed" into "real" is what it reads. Then only the dream's own ground is made rigid
  (its next frame's bottom 8 rows replaced by its previous frame's at the best shift), and last
  the ground of both frames replaced by the nearest band of the game's own tile (what
  ``worldsim.rewards.ground`` scores 0).
* **The ground's rigidity**: Super Mario Bros scrolls its level as one piece, so the bottom 8 rows
  of a real next frame are the previous frame's shifted by 0-4 pixels. Reported: the median mean
  absolute difference (levels of 255) at the best shift, for real steps, for the model's one-step
  predictions from real contexts at several sampling steps (1 is its mean), and for long dreams.
  It is the quantity ``worldsim.rewards.scroll`` rewards.
* **The ground carried** (``--carry``): ``--dreams`` dreams of 400 steps played twice from the same
  starts and noise, the second time with the newest context frame's bottom 8 rows replaced after
  every step by the previous frame's at the best shift (the columns entering on the right stay
  the dream's), so the model continues from a ground that moves as the game's does. The judge's
  mean logit and realistic fraction (``--threshold``: alignment_horizon.py's) per stretch of steps.

Usage::

    python benchmarks/long_dream_cues.py --critic runs/align2/judge-long-degraded [--adapter DIR] [--threads 1] [--carry --threshold -11.83]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from long_dreams import real_contexts, real_pairs, scripted_dreams  # benchmarks/, this script's folder
from worldsim.agents.dream_driver import dream_engine

import worldsim  # noqa: F401
from worldsim.core.frames import from_uint8, to_uint8
from worldsim.rewards.ground import load_ground_reward
from worldsim.rewards.realism import load_realism_reward
from worldsim.rewards.scroll import LEVELS, ScrollReward


def ground_difference(previous: torch.Tensor, next_frame: torch.Tensor) -> np.ndarray:
    """``float[B, C, H, W]`` pairs -> the scroll reward's difference (levels of 255) per pair."""
    return (ScrollReward().differences(previous, next_frame).min(dim=1).values * LEVELS).numpy()


def rigid_ground(previous: torch.Tensor, next_frame: torch.Tensor) -> torch.Tensor:
    """``next_frame`` with its ground (the scroll reward's bottom rows) replaced by ``previous``'s shifted left
    by the shift that fits best (the columns that enter on the right keep ``next_frame``'s): what a rigid scroll would draw."""
    scroll = ScrollReward()
    rigid = next_frame.clone()
    width = rigid.shape[-1]
    for i, shift in enumerate(scroll.differences(previous, next_frame).argmin(dim=1).tolist()):
        rigid[i, ..., -scroll.rows :, : width - shift] = previous[i, ..., -scroll.rows :, shift:]
    return rigid


@torch.no_grad()
def one_step_predictions(dataset_id: str, count: int, seed: int, sampling_steps: int | None, adapter: str | None):
    """``(previous, predicted, real next)`` ``float[N, C, H, W]``: the world model's next frames from ``count`` real contexts."""
    env = gym.make("worldsim/Mario-v0", adapter=adapter, **({"sampling_steps": sampling_steps} if sampling_steps else {}))
    model = dream_engine(env).model
    k = model.context_length
    frames, actions = real_contexts(dataset_id, k, count, seed)
    predicted = model.sampler.sample(model.denoiser, frames[:, :k], actions[:, 1:], generator=torch.Generator().manual_seed(seed))
    env.close()
    return frames[:, k - 1], from_uint8(to_uint8(predicted)), frames[:, k]


@torch.no_grad()
def carried_ground_logits(judge, dreams: int, steps: int, seed: int, carry: bool) -> np.ndarray:
    """The judge's logits ``[steps, dreams]`` on scripted dreams from the start states, with the ground carried or not."""
    played = scripted_dreams(None, dreams, steps, 0.2, seed, edit=rigid_ground if carry else None)
    return np.array([judge(previous, dreamed.frames).numpy() for _, previous, dreamed in played])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--critic", required=True, help="the judge (long_dream_critic.py --out)")
    parser.add_argument("--adapter", default=None, help="measure the world model with this adapter merged")
    parser.add_argument("--heldout", default="worldsim/mario-video-heldout-v0")
    parser.add_argument("--dreams", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--contexts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--carry", action="store_true", help="only the ground-carrying measurement (8 dreams of 400 steps, with and without)"
    )
    parser.add_argument("--threshold", type=float, default=None, help="a realistic step's least logit (alignment_horizon.py prints it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    judge = load_realism_reward(args.critic).critic.eval()
    if args.carry:
        if args.threshold is None:
            parser.error("--carry needs --threshold: the realistic threshold alignment_horizon.py printed for this judge")
        for carry in (False, True):
            logits = carried_ground_logits(judge, 8, 400, args.seed, carry)
            print(
                f"ground {'carried' if carry else 'as dreamed'}: judge logit / realistic, steps "
                + ", ".join(
                    f"{a + 1}-{b}: {logits[a:b].mean():+.2f} / {np.mean(logits[a:b] >= args.threshold):.2f}"
                    for a, b in ((0, 16), (16, 64), (64, 256), (256, 400))
                )
            )
        return

    kept = [
        np.stack([previous, dreamed.observations], axis=1)
        for step, (previous, _, dreamed) in enumerate(scripted_dreams(args.adapter, args.dreams, args.steps, 0.2, args.seed))
        if step >= args.skip
    ]
    dream = from_uint8(torch.from_numpy(np.concatenate(kept)))  # [N, 2, C, H, W]
    real = from_uint8(real_pairs(args.heldout, len(dream), args.seed))
    with torch.no_grad():
        dream_logit, real_logit = judge(dream[:, 0], dream[:, 1]).median(), judge(real[:, 0], real[:, 1]).median()
        print(
            f"judge {args.critic}: median logit, {len(dream)} long-dream steps (after step {args.skip}) {dream_logit:+.2f}, real steps {real_logit:+.2f}"
        )
        height = dream.shape[-2]
        for top in range(0, height, 16):
            pasted = dream.clone()
            pasted[..., top : top + 16, :] = real[..., top : top + 16, :]
            print(f"  rows {top}-{top + 16} of both frames from real steps: {judge(pasted[:, 0], pasted[:, 1]).median():+.2f}")
        rigid = rigid_ground(dream[:, 0], dream[:, 1])
        print(
            f"  the dream's own next ground made rigid (its previous frame's, at the best shift): {judge(dream[:, 0], rigid).median():+.2f}"
        )
        ground = load_ground_reward()
        tiled = judge(ground.nearest_ground(dream[:, 0]), ground.nearest_ground(dream[:, 1]))
        print(f"  the ground of both frames replaced by the nearest band of the game's tile (ground-mario-v0): {tiled.median():+.2f}")

    print(f"ground (bottom 8 rows) against the previous frame's at the best shift, median levels of 255 (x{LEVELS} of [-1, 1]):")
    previous, predicted, real_next = one_step_predictions(args.heldout, args.contexts, args.seed, None, args.adapter)
    print(f"  real steps: {np.median(ground_difference(previous, real_next)):.2f}")
    print(f"  one-step predictions from real contexts, the model's own sampler: {np.median(ground_difference(previous, predicted)):.2f}")
    for steps in (1, 4, 8):
        previous, predicted, _ = one_step_predictions(args.heldout, args.contexts, args.seed, steps, args.adapter)
        print(f"  one-step predictions, {steps} sampling steps: {np.median(ground_difference(previous, predicted)):.2f}")
    print(f"  long dreams after step {args.skip}: {np.median(ground_difference(dream[:, 0], dream[:, 1])):.2f}")


if __name__ == "__main__":
    main()
