"""One row per model from ``worldsim eval --json`` reports: the fidelity figures beside their baselines.

Columns: teacher-forced next-frame PSNR and changed-pixel PSNR (copying the last frame in
brackets), the autoregressive margin over holding the last real frame at steps 1/4/16,
Genie's delta-PSNR (true minus random actions) at steps 4/8/16, false ends per 1000 dreamed steps,
and the scroll error over the rollouts' horizon.

``--paired NAME`` adds a second table: each other model's rollout PSNR minus NAME's, rollout by
rollout, with its 95% confidence interval. ``worldsim eval`` draws the windows and the sampling
noise from its ``--seed`` alone, so reports made with one seed on one dataset are paired; the
difference then carries only the models' own variation, not the windows'.

Usage::

    python benchmarks/fidelity_table.py NAME=eval.json [NAME=eval.json ...] [--paired NAME]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

PAIRED_STEPS = (1, 4, 16)


def number(value: float | None) -> str:
    """One decimal, or n/a where the report has null (a figure it could not measure)."""
    return "n/a" if value is None else f"{value:.1f}"


def fidelity_of(report: dict) -> dict:
    """The fidelity part of a report (``worldsim eval`` nests it beside the probe's)."""
    return report.get("fidelity", report)


def row(name: str, report: dict) -> str:
    f = fidelity_of(report)
    margin = [a - c for a, c in zip(f["autoregressive_psnr"], f["copy_autoregressive_psnr"], strict=True)]

    def at(values: list[float], step: int) -> str:
        return f"{values[step - 1]:+.2f}" if len(values) >= step else "n/a"

    return (
        f"| {name} | {f['teacher_forced_psnr']:.2f} ({f['copy_psnr']:.2f}) | {f['changed_psnr']:.2f} ({f['copy_changed_psnr']:.2f}) | "
        f"{at(margin, 1)} / {at(margin, 4)} / {at(margin, 16)} | {at(f['delta_psnr'], 4)} / {at(f['delta_psnr'], 8)} / {at(f['delta_psnr'], 16)} | "
        f"{number(f['false_ends_per_1000_dreamed_steps'])} | {number(f['scroll_error'])} (real {number(f['real_scroll'])}) |"
    )


def paired_difference(report: dict, reference: dict, step: int) -> tuple[float, float, int]:
    """Mean of ``report``'s rollout PSNR minus ``reference``'s at ``step`` and the half-width of its
    95% interval (normal approximation, n >= 30 rollouts), and n."""
    a, b = (np.asarray(fidelity_of(r)["rollout_psnr"]) for r in (report, reference))
    difference = a[:, step - 1] - b[:, step - 1]
    return float(difference.mean()), float(1.96 * difference.std(ddof=1) / np.sqrt(len(difference))), len(difference)


def paired_rows(reports: dict[str, dict], reference: str) -> list[str]:
    """The paired table's rows, or exit with one line saying why the reports are not paired."""
    base = fidelity_of(reports[reference])
    lines = [
        f"| model | rollout PSNR minus {reference}'s at " + " / ".join(map(str, PAIRED_STEPS)) + " (dB, 95% CI) | rollouts |",
        "|---|---|---:|",
    ]
    for name, report in reports.items():
        if name == reference:
            continue
        f = fidelity_of(report)
        if not f.get("rollout_psnr") or not base.get("rollout_psnr"):
            sys.exit(f"fidelity_table: {name} or {reference} has no per-rollout PSNR; evaluate both again with this worldsim eval")
        if f["copy_autoregressive_psnr"] != base["copy_autoregressive_psnr"]:
            sys.exit(
                f"fidelity_table: {name} and {reference} were not evaluated on the same windows (same --seed, dataset, horizon, rollouts)"
            )
        cells = []
        for step in PAIRED_STEPS:
            if step > len(f["autoregressive_psnr"]):
                cells.append("n/a")
                continue
            mean, half, _ = paired_difference(report, reports[reference], step)
            cells.append(f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]")
        lines.append(f"| {name} | {' / '.join(cells)} | {len(f['rollout_psnr'])} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="NAME=PATH of a worldsim eval --json report")
    parser.add_argument("--paired", metavar="NAME", help="also compare every model with NAME rollout by rollout")
    args = parser.parse_args(argv)
    reports = {}
    for item in args.reports:
        name, _, path = item.partition("=")
        with open(path) as handle:
            reports[name] = json.load(handle)
    if args.paired is not None and args.paired not in reports:
        parser.error(f"--paired {args.paired}: no report of that name (names: {', '.join(reports)})")
    print(
        "| model | next-frame PSNR dB (copy) | changed-pixel PSNR dB (copy) | margin over copy at 1 / 4 / 16 (dB) | "
        "delta-PSNR at 4 / 8 / 16 (dB) | false ends / 1000 | scroll error px |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, report in reports.items():
        print(row(name, report))
    if args.paired is not None:
        print()
        print("\n".join(paired_rows(reports, args.paired)))


if __name__ == "__main__":
    main()
