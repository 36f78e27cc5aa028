"""Memory and time of one training step of a temporal layer against the number of frames.

One step is the forward and backward pass of a ``TemporalLayer`` (``attn``: rotary attention,
``s6``: causal S6, ``bi-s6``: bidirectional S6; equal width) over video features ``float[1,
--channels, F, --size, --size]``, for F in ``--frames``: what the SSM-meets-video-diffusion design
claims to change is how these grow with F (attention quadratic, the scans linear). ``attn`` runs
PyTorch's ``scaled_dot_product_attention`` as it chooses (a fused kernel that need not keep the
F x F attention matrix); ``attn-math`` is the same layer forced to its plain kernel
(``SDPBackend.MATH``), attention as the SSM-VDM paper measured it. A scan's kind may name its
selective-scan backend after a colon (``s6:parallel``, ``bi-s6:blocked``); plain ``s6`` runs the
default (``"auto"``). A ``+recompute`` suffix (``bi-s6+recompute``, ``attn-math+recompute``) builds
the layer with ``recompute=True``: each mixer keeps only its input for the backward pass and runs
again there (gradient checkpointing).

Each configuration runs in a fresh process, so that its peak memory is its own: ``saved`` is the
bytes autograd keeps for the backward pass (distinct storages, from
``torch.autograd.graph.saved_tensors_hooks``), ``peak RSS`` the process's high-water mark above
its memory before the step (on CUDA: ``torch.cuda.max_memory_allocated``), with glibc's mmap
threshold fixed so that resident memory follows the tensors alive (``isolated.LIVE_RSS_ENVIRONMENT``;
``--allocator-history`` leaves glibc's default, as the tables before 2026-12-02 were measured). Time: median of
``--repeats`` steps after a warm-up. A configuration that runs out of memory (on the CPU: past
``--memory-limit-gib``, where given) is reported as such: where attention stops fitting.
The last lines fit ``saved ~ a * F^b`` per layer: b near 1 is linear, near 2 quadratic.

Usage::

    python benchmarks/temporal_layers.py [--frames 16 64 256 1024] [--channels 64] [--size 8] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from isolated import limit_memory, peak_rss_mib, rss_mib, run_isolated, saved_tensor_bytes
from torch.nn.attention import SDPBackend, sdpa_kernel


def parse_kind(kind: str) -> tuple[str, str, str]:
    """``"bi-s6:blocked+recompute"`` -> ``("bi-s6", "blocked", "recompute")``: the layer
    (``attn-math`` included), its scan backend and its suffix (``""`` where not named)."""
    name, _, suffix = kind.partition("+")
    layer, _, backend = name.partition(":")
    return layer, backend, suffix


def measure(config: dict) -> dict:
    """One configuration in this process: ``{seconds, saved_mib, peak_mib}``."""
    from worldsim.models.temporal_layers import TemporalLayer

    torch.set_num_threads(config["threads"])
    if config.get("memory_limit_gib"):
        limit_memory(config["memory_limit_gib"])
    device = torch.device(config["device"])
    torch.manual_seed(0)
    kind, backend, suffix = parse_kind(config["kind"])
    if suffix not in ("", "recompute"):
        raise ValueError(f"unknown layer suffix +{suffix}: the one suffix is +recompute")
    options = ({"backend": backend} if backend else {}) | ({"recompute": True} if suffix else {})
    layer = TemporalLayer("attn" if kind == "attn-math" else kind, config["channels"], **options).to(device)
    video = torch.randn(1, config["channels"], config["frames"], config["size"], config["size"], device=device)

    def step() -> None:
        if kind == "attn-math":
            with sdpa_kernel(SDPBackend.MATH):
                layer(video).square().mean().backward()
        else:
            layer(video).square().mean().backward()

    before = rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with saved_tensor_bytes() as saved:
        step()  # warm-up, and the saved-tensor count
    times = []
    for _ in range(config["repeats"]):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = peak_rss_mib() - before
    return {"seconds": statistics.median(times), "saved_mib": sum(saved.values()) / 2**20, "peak_mib": peak}


COLOURS = {"attn": (30, 90, 230), "attn-math": (240, 140, 20), "s6": (150, 60, 200), "bi-s6": (20, 160, 60)}  # RGB


def plot_memory(points: dict[str, list[tuple[int, float]]], file: str, label: str, size: tuple[int, int] = (720, 420)) -> None:
    """A log-log PNG of memory (MiB, named by ``label``) against frames, one line per layer
    (OpenCV: no plotting library is a dependency)."""
    import cv2

    width, height = size
    left, right, top, bottom = 70, 210, 20, 50
    image = np.full((height, width, 3), 255, np.uint8)
    all_points = [p for line in points.values() for p in line]
    if not all_points:
        return
    x_low, x_high = np.log2(min(p[0] for p in all_points)), np.log2(max(p[0] for p in all_points))
    y_low, y_high = np.floor(np.log10(min(p[1] for p in all_points))), np.ceil(np.log10(max(p[1] for p in all_points)))

    def to_pixel(frames: float, mib: float) -> tuple[int, int]:
        x = left + (np.log2(frames) - x_low) / max(x_high - x_low, 1e-9) * (width - left - right)
        y = height - bottom - (np.log10(mib) - y_low) / max(y_high - y_low, 1e-9) * (height - top - bottom)
        return round(float(x)), round(float(y))

    grey, font = (170, 170, 170), cv2.FONT_HERSHEY_SIMPLEX
    for decade in range(int(y_low), int(y_high) + 1):
        y = to_pixel(2**x_low, 10.0**decade)[1]
        cv2.line(image, (left, y), (width - right, y), grey, 1)
        cv2.putText(image, f"{10.0**decade:g}", (8, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for frames in sorted({p[0] for p in all_points}):
        x = to_pixel(frames, 10.0**y_low)[0]
        cv2.line(image, (x, top), (x, height - bottom), grey, 1)
        cv2.putText(image, str(frames), (x - 12, height - bottom + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "frames", (width // 2 - 40, height - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, label, (left, top - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (kind, line) in enumerate(points.items()):
        layer, backend, suffix = parse_kind(kind)
        colour = COLOURS.get(layer, (0, 0, 0))
        if backend or suffix:  # a named scan backend, or recomputed: its layer's colour, paler
            colour = tuple(v // 2 + 100 for v in colour)
        pixels = np.array([to_pixel(f, m) for f, m in line], np.int32)
        cv2.polylines(image, [pixels], False, colour, 2, cv2.LINE_AA)
        for point in pixels:
            cv2.circle(image, tuple(int(v) for v in point), 3, colour, -1, cv2.LINE_AA)
        y = top + 20 + 18 * i
        cv2.line(image, (width - right + 10, y), (width - right + 30, y), colour, 2, cv2.LINE_AA)
        cv2.putText(image, kind, (width - right + 36, y + 4), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(file, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--kinds", nargs="+", default=["attn", "attn-math", "s6", "bi-s6"])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=8, help="feature map height and width (pixels = sequences)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--memory-limit-gib", type=float, help="cap each configuration's CPU memory: beyond it a row reads 'out of memory' (CPU only)"
    )
    parser.add_argument("--plot", help="write a log-log plot of memory against frames to this PNG")
    parser.add_argument(
        "--plot-metric", choices=["peak", "saved"], default="peak", help="plot peak memory (default) or the memory saved for backward"
    )
    parser.add_argument(
        "--allocator-history", action="store_true", help="leave glibc's dynamic mmap threshold: peak RSS then includes freed memory it kept"
    )
    parser.add_argument("--single", help=argparse.SUPPRESS)  # one configuration as JSON, run in this process
    args = parser.parse_args(argv)
    if args.single:
        print(json.dumps(measure(json.loads(args.single))))
        return

    shared = {
        "channels": args.channels,
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "device": args.device,
        "memory_limit_gib": args.memory_limit_gib,
    }
    print(
        f"one training step (forward + backward) of one temporal layer over float[1, {args.channels}, F, {args.size}, {args.size}], "
        f"{args.device}, {args.threads} thread(s), median of {args.repeats} (torch {torch.__version__})"
        + (f", at most {args.memory_limit_gib:g} GiB each" if args.memory_limit_gib else "")
        + ("" if args.allocator_history else ", glibc mmap threshold fixed (peak RSS = live tensors)")
    )
    print("| layer | frames | s/step | saved for backward MiB | peak MiB |")
    print("|---|---:|---:|---:|---:|")
    fits: dict[str, list[tuple[int, float]]] = {kind: [] for kind in args.kinds}
    peaks: dict[str, list[tuple[int, float]]] = {kind: [] for kind in args.kinds}
    for kind in args.kinds:
        for frames in args.frames:
            config = shared | {"kind": kind, "frames": frames}
            result, run = run_isolated(__file__, config, live_rss=not args.allocator_history)
            if result is None:
                lines = run.stderr.strip().splitlines()
                reason = (
                    "out of memory" if "memory" in run.stderr.lower() or run.returncode == -9 else (lines[-1] if lines else run.returncode)
                )
                print(f"| {kind} | {frames} | {reason} | | |", flush=True)
                continue
            fits[kind].append((frames, result["saved_mib"]))
            peaks[kind].append((frames, result["peak_mib"]))
            print(f"| {kind} | {frames} | {result['seconds']:.3f} | {result['saved_mib']:.1f} | {result['peak_mib']:.0f} |", flush=True)
    print()
    if args.plot:
        if args.plot_metric == "peak":
            plot_memory(peaks, args.plot, "peak MiB of one training step")
        else:
            plot_memory(fits, args.plot, "MiB saved for backward")
        print(f"wrote {args.plot}")
    for kind, points in fits.items():
        if len(points) >= 2:
            frames, saved = np.log([p[0] for p in points]), np.log([p[1] for p in points])
            exponent, _ = np.polyfit(frames, saved, 1)
            print(f"{kind}: saved memory ~ F^{exponent:.2f} over {len(points)} frame counts")


if __name__ == "__main__":
    main()
