"""How well the explorer imagines MiniWorld's four rooms: forward steps, a loop out and back, turning.

On held-out real episodes of ``worldsim/MiniWorldPanorama-v0`` (reset seeds ``seed ..``), each
start is turned (whole turns from the reset heading) until ``8`` steps forward all move the agent,
so that every walk here is a walk and not a bump against a wall. Then, from that real panorama:

* **forward**: PSNR / SSIM of the explorer's panorama after 1, 4 and 8 steps forward (8 is two
  imagined walks, the second from the first's last panorama) against MiniWorld's, beside holding
  the start panorama (copy-last, the trivial predictor);
* **loop**: 4 forward, turn round (180 degrees, exact), 4 forward, turn round: the end against the
  start. Beside it: the real simulator's own loop (near-exact: it is the same place), and how far
  the dream had gone after 4 out (a dream that never moves would close any loop);
* **yaw equivariance** (GenEx's spherical consistency): generate then roll against roll then
  generate, by a random whole turn, with the noise rolled too, so a perfectly equivariant explorer
  scores the quantisation floor. Beside it: two samples from one panorama with different noise
  (how far apart the explorer's own draws are);
* **speed**: ``worldsim/Explorer-v0`` at batch 1, moving forward only (a walk imagined every
  ``frames`` steps) and with uniformly random actions (turns are free);
* **denoising by noise level** (``--denoise-sigmas``): the real walk noised at each sigma and
  denoised once, conditioned on the real start: where in the noise range the network falls short.

Usage::

    python benchmarks/explorer_fidelity.py --explorer worldsim/checkpoints/explorer-v0 --episodes 32 --threads 2
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
from worldsim.core.frames import from_uint8
from worldsim.engine.panorama_engine import MOVE_FORWARD, TURN_LEFT, TURN_RIGHT, PanoramaEngine
from worldsim.eval.fidelity import frame_psnr, frame_ssim
from worldsim.models.panorama_explorer import load_explorer
from worldsim.video import write_frame_grid

HORIZONS = (1, 4, 8)
LOOP_OUT = 4


def _moved(before: dict, after: dict) -> bool:
    return np.hypot(after["agent_x"] - before["agent_x"], after["agent_z"] - before["agent_z"]) > 1e-3


def real_walks(episodes: int, seed: int, half_turn: int) -> dict[str, np.ndarray]:
    """``start uint8[E, H, W, C]``, ``forward uint8[E, 8, H, W, C]`` (after 1..8 steps) and
    ``loop_end`` (4 out, turn round, 4 back, turn round), on the first ``episodes`` seeds that have
    a heading with 8 free steps ahead."""
    env = gym.make("worldsim/MiniWorldPanorama-v0").unwrapped
    starts, forwards, loop_ends = [], [], []
    candidate = seed
    while len(starts) < episodes:
        for turns in range(2 * half_turn):
            start, info = env.reset(seed=candidate)
            for _ in range(turns):
                start, _, _, _, info = env.step(TURN_RIGHT)
            frames, free = [], True
            for _ in range(max(HORIZONS)):
                frame, _, _, _, after = env.step(MOVE_FORWARD)
                free, info = free and _moved(info, after), after
                frames.append(frame)
            if free:
                break
        candidate += 1
        if not free:
            continue
        # the loop, replayed from the same start
        env.reset(seed=candidate - 1)
        for action in [TURN_RIGHT] * turns + [MOVE_FORWARD] * LOOP_OUT + [TURN_LEFT] * half_turn:
            env.step(action)
        for action in [MOVE_FORWARD] * LOOP_OUT + [TURN_LEFT] * half_turn:
            loop_end = env.step(action)[0]
        starts.append(start)
        forwards.append(np.stack(frames))
        loop_ends.append(loop_end)
    env.close()
    return {"start": np.stack(starts), "forward": np.stack(forwards), "loop_end": np.stack(loop_ends)}


def _scores(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    a, b = from_uint8(torch.from_numpy(generated)), from_uint8(torch.from_numpy(real))
    return frame_psnr(a, b).mean().item(), frame_ssim(a, b).mean().item()


def dreamed_walks(engine: PanoramaEngine, starts: np.ndarray, half_turn: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same walks in the explorer: ``forward uint8[E, 8, H, W, C]``, ``out`` (after 4) and ``loop_end``."""
    indices = np.arange(len(starts))
    engine.reset(indices, rng, starts)
    forward = np.stack([engine.step(np.full(len(starts), MOVE_FORWARD)) for _ in range(max(HORIZONS))], axis=1)
    engine.reset(indices, rng, starts)
    for _ in range(LOOP_OUT):
        out = engine.step(np.full(len(starts), MOVE_FORWARD))
    for action in [TURN_LEFT] * half_turn + [MOVE_FORWARD] * LOOP_OUT + [TURN_LEFT] * half_turn:
        loop_end = engine.step(np.full(len(starts), action))
    return {"forward": forward, "out": out, "loop_end": loop_end}


def yaw_equivariance(engine: PanoramaEngine, starts: np.ndarray, seed: int) -> dict[str, float]:
    """PSNR of generate-then-roll against roll-then-generate (same noise, rolled), and of two draws,
    with the engine's own model and sampler."""
    model, sampler, turn_columns = engine.model, engine.sampler, engine.turn_columns
    generator = torch.Generator().manual_seed(seed)
    panorama = from_uint8(torch.from_numpy(starts))
    config = model.config
    clip_shape = (len(starts), config.frames, config.image_channels, config.image_height, config.image_width)
    turns = config.image_width // turn_columns
    shifts = turn_columns * torch.randint(1, turns, (len(starts),), generator=generator)
    noise = (torch.randn(panorama.shape, generator=generator), torch.randn(clip_shape, generator=generator))
    other = (torch.randn(panorama.shape, generator=generator), torch.randn(clip_shape, generator=generator))

    def roll(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.roll(item, int(shift), dims=-1) for item, shift in zip(x, shifts, strict=True)])

    generated = sampler.sample(model, panorama, noise=noise)
    turned_first = sampler.sample(model, roll(panorama), noise=(roll(noise[0]), roll(noise[1])))
    redrawn = sampler.sample(model, panorama, noise=other)
    return {
        "roll_then_generate_vs_generate_then_roll_psnr": frame_psnr(turned_first.flatten(0, 1), roll(generated).flatten(0, 1))
        .mean()
        .item(),
        "two_draws_psnr": frame_psnr(redrawn.flatten(0, 1), generated.flatten(0, 1)).mean().item(),
    }


@torch.no_grad()
def denoising_by_sigma(model, starts: np.ndarray, forward: np.ndarray, sigmas: list[float], seed: int) -> dict[float, dict]:
    """PSNR / SSIM of one denoise of the real walk (its first ``frames`` panoramas) noised at each sigma,
    at 1 and ``frames`` steps forward; the conditioning panorama noised as the sampler noises it."""
    generator = torch.Generator().manual_seed(seed)
    frames = model.config.frames
    clips = from_uint8(torch.from_numpy(forward[:, :frames]))
    panorama = from_uint8(torch.from_numpy(starts))
    condition, condition_sigma = model.sampling_condition(panorama, torch.randn(panorama.shape, generator=generator))
    results = {}
    for sigma in sigmas:
        noisy = clips + sigma * torch.randn(clips.shape, generator=generator)
        denoised = model.denoise(noisy, torch.full((len(starts),), sigma), condition, condition_sigma).clamp(-1, 1)
        results[sigma] = {
            step: (
                frame_psnr(denoised[:, step - 1], clips[:, step - 1]).mean().item(),
                frame_ssim(denoised[:, step - 1], clips[:, step - 1]).mean().item(),
            )
            for step in (1, frames)
        }
    return results


def env_speed(explorer: str, sampling_steps: int, steps: int, repeats: int, seed: int) -> dict[str, float]:
    """Median steps/s of ``worldsim/Explorer-v0`` at batch 1, forward only and with random actions."""
    env = gym.make("worldsim/Explorer-v0", checkpoint=explorer, sampling_steps=sampling_steps)
    rng = np.random.default_rng(seed)
    result = {}
    for name, actions in {"forward": lambda: MOVE_FORWARD, "random_actions": lambda: int(rng.integers(3))}.items():
        rates = []
        for repeat in range(repeats + 1):  # the first is a warm-up
            env.reset(seed=seed + repeat)
            begin = time.perf_counter()
            for _ in range(steps):
                env.step(actions())
            if repeat:
                rates.append(steps / (time.perf_counter() - begin))
        result[f"{name}_steps_per_s"] = statistics.median(rates)
    env.close()
    return result


def write_strip(path: str, real: dict[str, np.ndarray], dream: dict[str, np.ndarray], episodes: int = 3) -> None:
    """Per episode, two rows: real (start, 1, 4, 8 forward, loop end) above the dream's; 2x."""
    rows = []
    steps = [h - 1 for h in HORIZONS]
    for e in range(min(episodes, len(real["start"]))):
        rows.append([real["start"][e], *real["forward"][e, steps], real["loop_end"][e]])
        rows.append([real["start"][e], *dream["forward"][e, steps], dream["loop_end"][e]])
    write_frame_grid(rows, path, scale=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explorer", required=True, help="explorer checkpoint folder")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=100_000, help="first reset seed (held out of training's 0..)")
    parser.add_argument("--sampling-steps", type=int, default=4)
    parser.add_argument("--speed-steps", type=int, default=32, help="steps per timed run (0: no speed test)")
    parser.add_argument("--denoise-sigmas", help="comma-separated noise levels of the one-denoise test, e.g. 0.2,0.5,1,5,80")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strip", help="write a PNG strip of three episodes here")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, bank = load_explorer(args.explorer)
    engine = PanoramaEngine(model, bank, args.episodes, torch.device("cpu"), args.sampling_steps)
    engine.seed(np.random.default_rng(args.seed))
    half_turn = model.config.image_width // (2 * engine.turn_columns)
    real = real_walks(args.episodes, args.seed, half_turn)
    dream = dreamed_walks(engine, real["start"], half_turn, np.random.default_rng(args.seed))

    results: dict[str, dict] = {"forward": {}, "loop": {}}
    for h in HORIZONS:
        results["forward"][h] = {
            "explorer": _scores(dream["forward"][:, h - 1], real["forward"][:, h - 1]),
            "copy_start": _scores(real["start"], real["forward"][:, h - 1]),
        }
    results["loop"] = {
        "explorer_loop_end_vs_start": _scores(dream["loop_end"], real["start"]),
        "real_loop_end_vs_start": _scores(real["loop_end"], real["start"]),
        "explorer_after_4_out_vs_start": _scores(dream["out"], real["start"]),
        "real_after_4_out_vs_start": _scores(real["forward"][:, LOOP_OUT - 1], real["start"]),
    }
    results["yaw"] = yaw_equivariance(engine, real["start"], args.seed)
    if args.denoise_sigmas:
        sigmas = [float(sigma) for sigma in args.denoise_sigmas.split(",")]
        results["denoising"] = denoising_by_sigma(model, real["start"], real["forward"], sigmas, args.seed)
    if args.speed_steps:
        results["speed"] = env_speed(args.explorer, args.sampling_steps, args.speed_steps, repeats=3, seed=args.seed)

    print(f"explorer {args.explorer}: {args.episodes} held-out real walks (seeds {args.seed}+), {args.sampling_steps} sampling steps")
    print(f"{'forward steps':<14} {'explorer PSNR':>14} {'SSIM':>6} {'copy-start PSNR':>16} {'SSIM':>6} {'margin dB':>10}")
    for h, row in results["forward"].items():
        (p, s), (cp, cs) = row["explorer"], row["copy_start"]
        print(f"{h:<14} {p:>14.2f} {s:>6.3f} {cp:>16.2f} {cs:>6.3f} {p - cp:>+10.2f}")
    print("loop: 4 forward, turn round, 4 forward, turn round (PSNR / SSIM against the start)")
    for name, (p, s) in results["loop"].items():
        print(f"  {name:<32} {p:>6.2f} {s:>6.3f}")
    one_step = results["forward"][1]["explorer"][0]
    print(f"  loop end against the 1-step figure: {results['loop']['explorer_loop_end_vs_start'][0] - one_step:+.2f} dB")
    yaw = results["yaw"]
    print(
        f"yaw: roll-then-generate vs generate-then-roll {yaw['roll_then_generate_vs_generate_then_roll_psnr']:.2f} dB "
        f"(two draws from one panorama: {yaw['two_draws_psnr']:.2f} dB)"
    )
    if "denoising" in results:
        last = model.config.frames
        print(f"one denoise of the real walk noised at sigma (PSNR / SSIM at 1 and {last} forward):")
        for sigma, row in results["denoising"].items():
            print(f"  sigma {sigma:>6.2f}: {row[1][0]:6.2f} / {row[1][1]:.3f}   {row[last][0]:6.2f} / {row[last][1]:.3f}")
    if "speed" in results:
        speed = results["speed"]
        print(
            f"speed, batch 1, {args.threads} threads: {speed['forward_steps_per_s']:.2f} steps/s moving forward, "
            f"{speed['random_actions_steps_per_s']:.2f} with random actions"
        )
    if args.strip:
        write_strip(args.strip, real, dream)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"command": vars(args), "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
