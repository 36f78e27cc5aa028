"""The return test of a dream's memory: turn away from a room and back, and compare.

In the real MiniWorld room (``worldsim/MiniWorldRoom-v0``), turning left ``N`` steps then right
``N`` steps returns through exactly the views of the way out: the real frame ``2N - j`` equals
frame ``j``. Two protocols (``--observe``):

* ``start`` (the issue's test): each dream starts from the first K real frames and dreams the whole
  turn script. On the way back it has to draw views it last saw long ago: views of the real context
  (the last K steps of the way back), and views it drew itself on the way out.
* ``way-out``: each dream watches the real way out (frames ``0 .. N``; a memory reads them all, a
  frame stack keeps the last K) and dreams only the way back. Every view of the way back was seen,
  for real, 2 to 2N steps before: memory is tested without the drift of a long dream in between.
  Beside each dream, its ablation: the same dream whose way out, but for the last K frames, was
  another room's (a frame stack scores the same; a memory that is used scores less).

Scored on the way back (steps ``N+1 .. 2N``):

* against the real game (PSNR to the real frame, the same view);
* against itself: PSNR to what the same dream drew at the same heading on the way out (or to the
  real context frame, where the way out was the context);
* the trivial predictors beside them: the last real context frame held, and the context's mean
  held (a blur: PSNR rewards one, which is why SSIM stands beside it).

A frame stack of K frames cannot know what it turned away from more than K steps ago; a dream that
remembers can. Also measured: dream steps/s at batch 1 (the median of repeated dreams of the script).

Usage::

    python benchmarks/memory_return.py --checkpoint frame-stack=runs/wm-room/model \\
        --checkpoint memory=runs/wm-room-memory/model --episodes 32 --turns 12 --threads 1 \\
        --strip docs/room_return.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the envs)
from worldsim.core.frames import from_uint8, to_uint8
from worldsim.engine import load_engine_model
from worldsim.eval.fidelity import frame_psnr, frame_ssim, rollout
from worldsim.video import write_frame_grid

TURN_LEFT, TURN_RIGHT = 0, 1


def real_turns(episodes: int, turns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames float[E, 2N + 1, C, H, W]`` of the real room turning ``N`` left then ``N`` right, and
    ``actions int64[E, 2N + 1]`` (``actions[:, i]`` produced ``frames[:, i]``; 0 before the first)."""
    env = gym.make("worldsim/MiniWorldRoom-v0")
    script = [TURN_LEFT] * turns + [TURN_RIGHT] * turns
    all_frames = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        frames = [observation]
        for action in script:
            frames.append(env.step(action)[0])
        all_frames.append(np.stack(frames))
    env.close()
    actions = torch.tensor([[0] + script] * episodes, dtype=torch.int64)
    return from_uint8(torch.from_numpy(np.stack(all_frames))), actions


def return_scores(dreamed: torch.Tensor, real: torch.Tensor, turns: int) -> dict[str, list[float]]:
    """Mean PSNR (and SSIM) per step of the way back (steps ``N+1 .. 2N``): to the real frame, and to the
    dream's own frame at the same heading on the way out. ``dreamed`` holds the full ``2N + 1`` frames
    (real context first). SSIM is there because PSNR pays a blur: a grey smear can outscore a sharp
    room drawn a few pixels off."""
    to_real, to_itself, ssim_to_real = [], [], []
    for t in range(turns + 1, 2 * turns + 1):
        mirror = 2 * turns - t
        to_real.append(frame_psnr(dreamed[:, t], real[:, t]).mean().item())
        to_itself.append(frame_psnr(dreamed[:, t], dreamed[:, mirror]).mean().item())
        ssim_to_real.append(frame_ssim(dreamed[:, t], real[:, t]).mean().item())
    return {"to_real": to_real, "to_itself": to_itself, "ssim_to_real": ssim_to_real}


def dream_after_watching(model, frames: torch.Tensor, actions: torch.Tensor, real: torch.Tensor, observed: int) -> torch.Tensor:
    """The whole script as scored, ``float[E, 2N + 1, C, H, W]``: the real frames watched
    (``real[:, :observed]``), then the dream ``model`` continues from ``frames[:, :observed]``. The
    noise is seeded 0 in every call, so a dream and its ablation draw the same."""
    generated, _ = rollout(model, frames, actions, frames.shape[1] - observed, torch.Generator().manual_seed(0), observed=observed)
    return torch.cat([real[:, :observed], generated], dim=1)


def dream_speed(model, frames: torch.Tensor, actions: torch.Tensor, repeats: int = 5) -> float:
    """Dream steps per second at batch 1: the median of ``repeats`` dreams of the whole turn script."""
    k = model.context_length
    steps = frames.shape[1] - k
    times = []
    for _ in range(repeats + 1):  # the first is warm-up
        started = time.perf_counter()
        rollout(model, frames[:1, : k + steps], actions[:1, : k + steps], horizon=steps, generator=torch.Generator().manual_seed(0))
        times.append(time.perf_counter() - started)
    return steps / statistics.median(times[1:])


def write_strip(path: str, real: torch.Tensor, dreams: dict[str, torch.Tensor], turns: int, episode: int = 0) -> None:
    """Rows: the real room, then each dream; columns: the way back, every other step, left to right; 3x."""
    columns = list(range(turns + 1, 2 * turns + 1, 2))
    rows = [real[episode, columns]] + [dream[episode, columns] for dream in dreams.values()]
    write_frame_grid([list(to_uint8(row).numpy()) for row in rows], path, scale=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH of a room world model (repeatable)")
    parser.add_argument("--episodes", type=int, default=32, help="rooms (reset seeds seed .. seed + episodes - 1)")
    parser.add_argument("--turns", type=int, default=12, help="N: turns away (15 degrees each), then N back")
    parser.add_argument(
        "--observe",
        choices=("start", "way-out"),
        default="start",
        help="real frames a dream starts from: the first K, or the whole way out",
    )
    parser.add_argument("--seed", type=int, default=100_000, help="first reset seed (the held-out dataset's range)")
    parser.add_argument("--sampling-steps", type=int, help="Euler steps per frame instead of the models' own")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strip", help="write a PNG: the real way back, then each dream's")
    parser.add_argument("--json", help="write the scores here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    real, actions = real_turns(args.episodes, args.turns, args.seed)
    assert torch.equal(real[:, 0], real[:, -1]), "the real room must look the same after turning back"
    results, dreams = {}, {}
    for spec in args.checkpoint:
        name, path = spec.split("=", 1)
        model, _, _ = load_engine_model(path, "cpu", args.sampling_steps)
        k = model.context_length
        observed = k if args.observe == "start" else args.turns + 1
        dreamed = dream_after_watching(model, real, actions, real, observed)
        dreams[name] = dreamed
        scores = return_scores(dreamed, real, args.turns)
        results[name] = scores | {"steps_per_second": dream_speed(model, real, actions)}
        if observed > k:
            # The ablation: the same dream, same noise, but the way out before its last K frames is
            # another room's. What changes is what the memory contributes; a frame stack is unmoved.
            misled = torch.cat([real.roll(1, dims=0)[:, : observed - k], real[:, observed - k :]], dim=1)
            misled_dream = dream_after_watching(model, misled, actions, real, observed)
            results[f"{name}, another room's past"] = return_scores(misled_dream, real, args.turns)
    # Trivial predictors beside the dreams: the last real frame seen held, and the blur of the frames seen (their mean, held).
    held = real[:, observed - 1 : observed].expand_as(real)
    results["hold last real frame"] = return_scores(torch.cat([real[:, :observed], held[:, observed:]], dim=1), real, args.turns)
    blur = real[:, :observed].mean(dim=1, keepdim=True).expand_as(real)
    results["hold mean of real frames"] = return_scores(torch.cat([real[:, :observed], blur[:, observed:]], dim=1), real, args.turns)

    back = range(args.turns + 1, 2 * args.turns + 1)
    print(
        f"return test: {args.episodes} rooms, {args.turns} turns left then {args.turns} right, the dreams start from "
        f"{'the first K real frames' if args.observe == 'start' else 'the real way out'}; PSNR (dB) on the way back"
    )
    print(
        f"{'dream':<36} {'to real, mean':>14} {'to real, last K':>16} {'to itself, mean':>16} {'SSIM to real':>13} {'steps/s (batch 1)':>18}"
    )
    for name, scores in results.items():
        speed = scores.get("steps_per_second", float("nan"))
        print(
            f"{name:<36} {np.mean(scores['to_real']):>14.2f} {np.mean(scores['to_real'][-k:]):>16.2f} "
            f"{np.mean(scores['to_itself']):>16.2f} {np.mean(scores['ssim_to_real']):>13.3f} {speed:>18.1f}"
        )
    print("per step of the way back (step: " + " ".join(f"{t:>5}" for t in back) + ")")
    for name, scores in results.items():
        print(f"{name:<36} to real " + " ".join(f"{value:5.1f}" for value in scores["to_real"]))
    if args.strip:
        write_strip(args.strip, real, dreams, args.turns)
        print(f"wrote {args.strip}: rows real, {', '.join(dreams)}; the way back, every other step")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"command": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
