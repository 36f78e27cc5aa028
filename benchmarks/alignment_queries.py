"""Reward against reward queries: the reward-gradient aligner against its gradient-free baseline.

Reads the ``curve.csv`` of ``worldsim align`` runs (one row per update: the mean reward of the
batch it scored, before that update's step) and prints, per run, the reward smoothed over
``--window`` updates at a few query counts, then the efficiency ratio the issue asks for: the
baseline's best smoothed reward, the queries it needed to first reach it, and the queries the
first run (the aligner) needed to reach the same value.

The rows score the frames of the dreams being played, which drift with the adapter; the fixed
contexts of each run's ``report.json`` (same contexts, same noise, adapter off and on) are the
controlled before/after and are printed too.

Usage::

    python benchmarks/alignment_queries.py runs/align-rg runs/align-ddpo [more runs] [--window 25]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def smoothed_rewards(run: Path, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(queries, reward)``: the trailing mean over ``window`` updates, from the ``window``-th update on."""
    with open(run / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    queries = np.array([float(row["queries"]) for row in rows])
    reward = np.array([float(row["reward"]) for row in rows])
    if len(reward) < window:
        raise SystemExit(f"{run}: {len(reward)} updates, fewer than --window {window}")
    trailing = np.convolve(reward, np.ones(window) / window, mode="valid")
    return queries[window - 1 :], trailing


def first_reaching(queries: np.ndarray, reward: np.ndarray, level: float) -> float:
    above = np.nonzero(reward >= level)[0]
    return float(queries[above[0]]) if len(above) else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="worldsim align --out folders; the first is compared with each other")
    parser.add_argument("--window", type=int, default=25)
    args = parser.parse_args(argv)

    curves = {run: smoothed_rewards(run, args.window) for run in args.runs}
    marks = sorted({int(q) for q in np.linspace(0, max(c[0][-1] for c in curves.values()), 6)[1:]})
    print(f"smoothed reward (trailing mean of {args.window} updates) at reward queries:")
    print("| run | " + " | ".join(f"{m}" for m in marks) + " | fixed contexts: before -> after |")
    print("|---|" + "---:|" * len(marks) + "---|")
    for run, (queries, reward) in curves.items():
        at = [reward[np.searchsorted(queries, m, side="right") - 1] if m >= queries[0] else float("nan") for m in marks]
        report = json.loads((run / "report.json").read_text()) if (run / "report.json").exists() else None
        fixed = f"{report['before']['total']:+.3f} -> {report['after']['total']:+.3f}" if report else "(no report.json)"
        print(f"| {run} | " + " | ".join(f"{v:+.3f}" for v in at) + f" | {fixed} |")

    first, (first_queries, first_reward) = args.runs[0], curves[args.runs[0]]
    for other in args.runs[1:]:
        queries, reward = curves[other]
        best = int(np.argmax(reward))
        needed = first_reaching(first_queries, first_reward, reward[best])
        ratio = queries[best] / needed if np.isfinite(needed) else float("nan")
        print(
            f"\n{other}: best smoothed reward {reward[best]:+.3f}, first reached after {queries[best]:.0f} queries; "
            f"{first} reached it after {needed:.0f} queries: {ratio:.1f}x fewer"
            if np.isfinite(needed)
            else f"\n{other}: best smoothed reward {reward[best]:+.3f} after {queries[best]:.0f} queries; {first} never reached it"
        )


if __name__ == "__main__":
    main()
