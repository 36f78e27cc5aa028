"""How long a dream stays realistic, with and without an alignment adapter (VADER's "3x longer" claim).

Two measures, each for the shipped world model alone and with ``--adapter`` merged (at each of
``--adapter-scale``'s scales: 1 as trained, less keeps less of it; and with
``--adapter-sigma-max S``, acting only at the sampler's noise levels <= S), on the same starts with
the same sampling noise:

* **realistic horizon** (no real frames needed): ``--dreams`` dreams of ``--steps`` steps from the
  model's start states, the scripted runner (``--epsilon`` random actions) playing, never reset (a
  predicted death or flag is dreamed past, as ``dream_long_rollout.py`` does). The realism critic
  (``--critic``) scores every dreamed step (previous frame, next frame). A step counts as realistic
  when its logit is at least the ``--quantile`` (0.1) quantile of a reference: with ``--reference
  dreamed`` (the default) the base model's one-step predictions from real held-out contexts (a step
  as real as the base dream's first steps from a real start, bar their least real tenth); with
  ``--reference real`` real held-out steps (a critic that separates real from dreamed perfectly
  fails every dreamed step against it). A dream's horizon is
  the steps before the first stretch of ``--window`` (25) steps of which fewer than half were
  realistic (0 if the first stretch fails; ``--steps`` if none does). Reported: the median horizon,
  the median count of realistic steps per dream, the mean logit and realistic fraction per stretch
  of steps;
* **copy margin along whole episodes**: held-out real episodes dreamed open-loop from their first
  K frames under their recorded actions to their end (at most ``--steps``); PSNR against the real
  frame minus the PSNR of holding the last real context frame, per stretch of steps; and each
  adapter's margin minus the base's on the same episodes and noise, with a 95% interval.

The critic is a learned judge and a fixed one: an adapter trained on the same critic can please it
without looking more real, so the copy margin (which needs no network) stands beside it, and an
independent critic (``--critic`` another run's) can be named.

Usage::

    python benchmarks/alignment_horizon.py [--critic runs/align-realism/model] --adapter runs/align-rg/adapter \\
        --heldout worldsim/mario-video-heldout-v0 [--reference dreamed|real] [--dreams 8] [--steps 1000] [--threads 1] \\
        [--strip strip.png]   # the first dream of each model at steps 10, 50, 150, 300, 600 and the last
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from long_dreams import real_contexts, real_pairs, scripted_dreams  # benchmarks/, this script's folder
from worldsim.agents.dream_driver import dream_engine

import worldsim  # noqa: F401
from worldsim.core.frames import from_uint8, to_uint8
from worldsim.data.minari_io import load_dataset
from worldsim.eval.fidelity import frame_psnr, rollout
from worldsim.rewards.realism import load_realism_reward
from worldsim.video import write_frame_grid

STRETCHES = ((1, 16), (17, 64), (65, 256), (257, 1000))


@torch.no_grad()
def real_logits(critic, dataset_id: str, count: int, seed: int) -> np.ndarray:
    """The critic's logits on ``count`` random real steps (previous frame, next frame) of ``dataset_id``."""
    chunks = (from_uint8(chunk) for chunk in real_pairs(dataset_id, count, seed).split(64))
    return torch.cat([critic(frames[:, 0], frames[:, 1]) for frames in chunks]).numpy()


@torch.no_grad()
def one_step_logits(critic, dataset_id: str, count: int, seed: int) -> np.ndarray:
    """The critic's logits on the base model's one-step predictions from ``count`` real contexts of
    ``dataset_id`` under their recorded actions."""
    env = gym.make("worldsim/Mario-v0")
    model = dream_engine(env).model
    k = model.context_length
    contexts, context_actions = real_contexts(dataset_id, k, count, seed)
    generator = torch.Generator().manual_seed(seed)
    logits = []
    for frames, actions in zip(contexts.split(64), context_actions.split(64), strict=True):
        dreamed = model.sampler.sample(model.denoiser, frames[:, :k], actions[:, 1:], generator=generator)
        logits.append(critic(frames[:, k - 1], dreamed))
    env.close()
    return torch.cat(logits).numpy()


@torch.no_grad()
def dream_logits(
    critic,
    adapter: str | None,
    dreams: int,
    steps: int,
    epsilon: float,
    seed: int,
    adapter_scale: float = 1.0,
    keep: tuple[int, ...] = (),
    adapter_sigma_max: float | None = None,
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """``float[dreams, steps]``: the critic's logit of each dreamed step, never resetting; and the
    first dream's frames (``float[C, H, W]``) at the steps in ``keep`` (1-based, for the strip)."""
    logits, kept = np.zeros((dreams, steps), np.float32), []
    dreamer = scripted_dreams(adapter, dreams, steps, epsilon, seed, adapter_scale=adapter_scale, adapter_sigma_max=adapter_sigma_max)
    for step, (_, previous, dreamed) in enumerate(dreamer):
        logits[:, step] = critic(previous, dreamed.frames).numpy()
        if step + 1 in keep:
            kept.append(dreamed.frames[0])
    return logits, kept


def strip_steps(steps: int) -> tuple[int, ...]:
    """The steps a strip shows: early, the stretches' ends, and the last."""
    return tuple(sorted({s for s in (10, 50, 150, 300, 600, steps) if s <= steps}))


def write_strip(path: Path, rows: dict[str, list[torch.Tensor]]) -> None:
    """A PNG: one row per model (the same dream: same start, actions drawn the same way, same noise
    until the models' frames differ), one column per step of ``strip_steps``; 3x, a 6-pixel gap between."""
    write_frame_grid([[to_uint8(frame).numpy() for frame in frames] for frames in rows.values()], path, scale=3, gap=6)


def cell(value: float, spec: str) -> str:
    """A table cell; n/a where a stretch had no steps (dreams or episodes shorter than it)."""
    return format(value, spec) if np.isfinite(value) else "n/a"


def horizons(realistic: np.ndarray, window: int) -> np.ndarray:
    """Per dream, the steps before the first stretch of ``window`` steps of which fewer than half
    were realistic (0: the dream's first ``window`` steps already fail); the dream's length if never."""
    steps = realistic.shape[1]
    out = np.full(realistic.shape[0], steps)
    kernel = np.ones(window)
    for row, flags in enumerate(realistic.astype(np.float64)):
        fraction = np.convolve(flags, kernel, mode="full")[:steps] / window  # over the last `window` steps
        below = np.nonzero((fraction < 0.5) & (np.arange(1, steps + 1) >= window))[0]
        if len(below):
            out[row] = below[0] + 1 - window
    return out


@torch.no_grad()
def episode_margins(
    adapter: str | None,
    dataset_id: str,
    episodes: int,
    steps: int,
    seed: int,
    adapter_scale: float = 1.0,
    adapter_sigma_max: float | None = None,
) -> dict[tuple[int, int], list[float]]:
    """Open-loop dreams of whole held-out episodes: per stretch of steps, the PSNR margins over
    holding the last real context frame (one value per dreamed step)."""
    env = gym.make("worldsim/Mario-v0", adapter=adapter, adapter_scale=adapter_scale, adapter_sigma_max=adapter_sigma_max)
    model = dream_engine(env).model
    k = model.context_length
    dataset = load_dataset(dataset_id)
    chosen = [e for e in dataset.iterate_episodes() if len(e.actions) >= k + 16][:episodes]
    generator = torch.Generator().manual_seed(seed)
    margins: dict[tuple[int, int], list[float]] = {stretch: [] for stretch in STRETCHES}
    for episode in chosen:
        frames = from_uint8(torch.from_numpy(np.asarray(episode.observations))[None])  # [1, T + 1, C, H, W]
        actions = torch.zeros((1, frames.shape[1]), dtype=torch.int64)
        actions[0, 1:] = torch.from_numpy(np.asarray(episode.actions, np.int64))  # actions[:, i] produced frames[:, i]
        horizon = min(frames.shape[1] - k, steps)
        generated, _ = rollout(model, frames[:, : k + horizon], actions[:, : k + horizon], horizon, generator)
        real = frames[0, k : k + horizon]
        copy = frames[0, k - 1].expand_as(real)
        margin = (frame_psnr(generated[0], real) - frame_psnr(copy, real)).numpy()
        for first, last in STRETCHES:
            margins[(first, last)] += margin[first - 1 : last].tolist()
    env.close()
    return margins


def paired_margin_difference(margins: list[float], base: list[float], block: int = 16, draws: int = 2000) -> tuple[float, float, float]:
    """Mean of ``margins - base`` (the same episodes, steps and noise) and its 95% interval, from a
    bootstrap over blocks of ``block`` consecutive steps (neighbouring steps of a dream are not
    independent)."""
    difference = np.asarray(margins) - np.asarray(base)
    blocks = [difference[i : i + block] for i in range(0, len(difference), block)]
    rng = np.random.default_rng(0)
    means = [np.concatenate([blocks[j] for j in rng.integers(0, len(blocks), len(blocks))]).mean() for _ in range(draws)]
    return float(difference.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--critic", default=None, help="a realism critic (worldsim train --model realism-mario's OUT/model; default: the shipped one)"
    )
    parser.add_argument("--adapter", action="append", default=[], help="an adapter folder (repeatable); the base model is always measured")
    parser.add_argument(
        "--adapter-scale", type=float, nargs="+", default=[1.0], help="measure each adapter merged at each of these scales (default 1)"
    )
    parser.add_argument(
        "--adapter-sigma-max",
        type=float,
        nargs="+",
        default=[None],
        help="measure each adapter acting only at noise levels <= each of these (default: at every level)",
    )
    parser.add_argument("--heldout", required=True, help="Minari dataset of real held-out episodes")
    parser.add_argument("--dreams", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--reference", choices=["dreamed", "real"], default="dreamed")
    parser.add_argument("--quantile", type=float, default=0.1)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--strip", type=Path, default=None, help="write a PNG: the first dream at a few steps, one row per model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    critic = load_realism_reward(args.critic).critic.eval()  # a degrading judge's blur and levels are in its config
    real = real_logits(critic, args.heldout, 2048, args.seed)
    one_step = one_step_logits(critic, args.heldout, 512, args.seed)
    if args.reference == "real":
        threshold, reference = float(np.quantile(real, args.quantile)), f"the {args.quantile:.0%} quantile of real steps"
    else:
        threshold, reference = (
            float(np.quantile(one_step, args.quantile)),
            f"the {args.quantile:.0%} quantile of the base model's one-step predictions from real contexts",
        )
    print(
        f"critic {args.critic or 'realism-mario-v0 (shipped)'}: logit median on real held-out steps {np.median(real):+.2f}, on the base model's one-step predictions "
        f"{np.median(one_step):+.2f}; realistic means >= {threshold:+.2f} ({reference}); "
        f"passing: real {np.mean(real >= threshold):.2f}, one-step {np.mean(one_step >= threshold):.2f}"
    )
    results = {
        "critic": args.critic or "realism-mario-v0 (shipped)",
        "reference": reference,
        "threshold": threshold,
        "real_pass": float(np.mean(real >= threshold)),
        "one_step_pass": float(np.mean(one_step >= threshold)),
        "models": {},
    }
    header = (
        "| model | median horizon (steps) | horizons | realistic steps per dream (median) | "
        + " | ".join(f"realistic {a}-{b}" for a, b in STRETCHES)
        + " | "
        + " | ".join(f"logit {a}-{b}" for a, b in STRETCHES)
        + " | "
        + " | ".join(f"copy margin {a}-{b} (dB)" for a, b in STRETCHES)
        + " |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    measured = [(None, 1.0, None)] + [
        (adapter, scale, sigma_max) for adapter in args.adapter for scale in args.adapter_scale for sigma_max in args.adapter_sigma_max
    ]
    strip_rows: dict[str, list[torch.Tensor]] = {}
    base_margins, paired_rows = None, []
    for adapter, scale, sigma_max in measured:
        name = "base (no adapter)" if adapter is None else adapter if scale == 1.0 else f"{adapter} at scale {scale:g}"
        if adapter is not None and sigma_max is not None:
            name += f" at levels <= {sigma_max:g}"
        logits, strip_rows[name] = dream_logits(
            critic, adapter, args.dreams, args.steps, args.epsilon, args.seed, scale, strip_steps(args.steps), sigma_max
        )
        realistic = logits >= threshold
        per_dream = horizons(realistic, args.window)
        realistic_steps = realistic.sum(axis=1)
        margins = episode_margins(adapter, args.heldout, args.episodes, args.steps, args.seed, scale, sigma_max)
        stretch_realistic = [float(realistic[:, a - 1 : b].mean()) if a <= args.steps else float("nan") for a, b in STRETCHES]
        stretch_logit = [float(logits[:, a - 1 : b].mean()) if a <= args.steps else float("nan") for a, b in STRETCHES]
        stretch_margin = [float(np.mean(margins[s])) if margins[s] else float("nan") for s in STRETCHES]
        if base_margins is None:
            base_margins = margins
        else:
            paired = [paired_margin_difference(margins[s], base_margins[s]) if margins[s] else None for s in STRETCHES]
            results.setdefault("copy_margin_minus_base", {})[name] = paired
            paired_rows.append(
                f"| {name} | " + " | ".join("n/a" if p is None else f"{p[0]:+.2f} [{p[1]:+.2f}, {p[2]:+.2f}]" for p in paired) + " |"
            )
        results["models"][name] = {
            "horizons": per_dream.tolist(),
            "median_horizon": float(np.median(per_dream)),
            "realistic_steps": realistic_steps.tolist(),
            "realistic": stretch_realistic,
            "logit": stretch_logit,
            "copy_margin": stretch_margin,
            "copy_margin_steps": [len(margins[s]) for s in STRETCHES],
            "logits": logits.round(3).tolist(),  # [dream][step]: other thresholds can be applied afterwards
        }
        rows.append(
            f"| {name} | {np.median(per_dream):.0f} | {' '.join(map(str, per_dream.tolist()))} | {np.median(realistic_steps):g} | "
            + " | ".join(cell(v, ".2f") for v in stretch_realistic)
            + " | "
            + " | ".join(cell(v, "+.2f") for v in stretch_logit)
            + " | "
            + " | ".join(cell(v, "+.2f") for v in stretch_margin)
            + " |"
        )
        print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    print(f"(copy-margin steps per stretch, last model: {results['models'][name]['copy_margin_steps']})")
    if paired_rows:
        print("\ncopy margin along episodes minus the base's (the same episodes and noise; 95% interval, bootstrap over 16-step blocks)")
        print("| model | " + " | ".join(f"steps {a}-{b}" for a, b in STRETCHES) + " |")
        print("|---|" + "---|" * len(STRETCHES))
        print("\n".join(paired_rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.strip:
        write_strip(args.strip, strip_rows)
        print(f"wrote {args.strip}: rows {', '.join(strip_rows)}; columns steps {', '.join(map(str, strip_steps(args.steps)))}")


if __name__ == "__main__":
    main()
