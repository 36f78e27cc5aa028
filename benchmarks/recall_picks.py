"""Which frame a view-bank dream recalls on the way back of the return test, and how closely it copies it.

On the way back of ``benchmarks/memory_return.py``'s turn script, step ``t`` shows again the view of
frame ``2N - t`` (the mirror), which the bank holds (slot ``j`` holds frame ``j``: the bank is larger
than the script). Per step this prints the share of rooms whose recall picked the mirror, PSNR of
the dream's frame to the recalled view (how much the dream copies it), and PSNR of the view to the
real frame (how right the copy would be). For a top-1 recall (``model.memory.recall_temperature``
0) "picked" is the view itself; for a softmax recall, the best-scoring frame.

Usage::

    python benchmarks/recall_picks.py --checkpoint runs/wm-room-memory-views-top1/model --observe start
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from memory_return import real_turns  # the same rooms and script as the return test

from worldsim.engine import load_engine_model
from worldsim.eval.fidelity import frame_psnr, rollout
from worldsim.models.frame_memory import FrameMemory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a world model folder with model.memory.view_bank")
    parser.add_argument("--observe", choices=["start", "way-out"], default="start", help="as memory_return.py's")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _, _ = load_engine_model(args.checkpoint, "cpu", None)
    if not model.denoiser.recalls_views:
        sys.exit(f"{args.checkpoint}: the model has no view bank (model.memory.view_bank is 0): nothing to recall")
    frames, actions = real_turns(args.episodes, args.turns, args.seed)
    observed = model.context_length if args.observe == "start" else args.turns + 1
    picks, views = [], []
    recall = FrameMemory.recalled_view

    def recorded(memory_module, memory, state):  # the recall as the dream runs it, its pick kept
        picks.append(memory_module.recall_scores(memory, state).argmax(-1))
        views.append(recall(memory_module, memory, state))
        return views[-1]

    FrameMemory.recalled_view = recorded
    with torch.no_grad():
        dreamed, _ = rollout(model, frames, actions, frames.shape[1] - observed, torch.Generator().manual_seed(0), observed=observed)
    print(f"{args.episodes} rooms, {args.turns} turns each way, dream from the {args.observe}")
    print("step  mirror  picked the mirror  PSNR dream-to-view  PSNR view-to-real")
    for i, pick in enumerate(picks):  # picks[i]: the recall before frame observed + i
        t = observed + i
        if t <= args.turns:
            continue
        mirror = 2 * args.turns - t
        right = (pick == mirror).float().mean().item()
        to_view = frame_psnr(dreamed[:, i], views[i]).mean().item()
        view_to_real = frame_psnr(views[i], frames[:, t]).mean().item()
        print(f"{t:4d}  {mirror:6d}  {right:17.0%}  {to_view:18.1f}  {view_to_real:17.1f}")


if __name__ == "__main__":
    main()
