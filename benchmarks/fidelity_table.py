"""One row per model from ``worldsim eval --json`` reports: the fidelity figures beside their baselines.

Columns: teacher-forced next-frame PSNR and changed-pixel PSNR (copying the last frame in
brackets), the autoregressive margin over holding the last real frame at steps 1/4/16,
Genie's delta-PSNR (true minus random actions) at steps 4/8/16, false ends per 1000 dreamed steps,
and the scroll error over the rollouts' horizon.

Usage::

    python benchmarks/fidelity_table.py NAME=eval.json [NAME=eval.json ...]
"""

from __future__ import annotations

import argparse
import json


def row(name: str, report: dict) -> str:
    f = report["fidelity"] if "fidelity" in report else report
    margin = [a - c for a, c in zip(f["autoregressive_psnr"], f["copy_autoregressive_psnr"], strict=True)]

    def at(values: list[float], step: int) -> str:
        return f"{values[step - 1]:+.2f}" if len(values) >= step else "n/a"

    return (
        f"| {name} | {f['teacher_forced_psnr']:.2f} ({f['copy_psnr']:.2f}) | {f['changed_psnr']:.2f} ({f['copy_changed_psnr']:.2f}) | "
        f"{at(margin, 1)} / {at(margin, 4)} / {at(margin, 16)} | {at(f['delta_psnr'], 4)} / {at(f['delta_psnr'], 8)} / {at(f['delta_psnr'], 16)} | "
        f"{f['false_ends_per_1000_dreamed_steps']:.1f} | {f['scroll_error']:.1f} (real {f['real_scroll']:.1f}) |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="NAME=PATH of a worldsim eval --json report")
    args = parser.parse_args(argv)
    print(
        "| model | next-frame PSNR dB (copy) | changed-pixel PSNR dB (copy) | margin over copy at 1 / 4 / 16 (dB) | "
        "delta-PSNR at 4 / 8 / 16 (dB) | false ends / 1000 | scroll error px |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for item in args.reports:
        name, _, path = item.partition("=")
        with open(path) as handle:
            print(row(name, json.load(handle)))


if __name__ == "__main__":
    main()
