"""Measuring one configuration in a process of its own, for the memory benchmarks.

A process's peak resident memory is a high-water mark: configurations measured one after another
in one process would each see the largest before them. So a benchmark re-runs its own script
with ``--single CONFIG_JSON`` per configuration (``run_isolated``), and that process reports its
figures as one JSON line. ``saved_tensor_bytes`` counts what autograd keeps for the backward pass
(distinct storages), which is what checkpointing and sequence length change.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator

import torch


def rss_mib() -> float:
    """This process's resident memory now, MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def saved_tensor_bytes() -> Iterator[dict[int, int]]:
    """Within the block, record every storage autograd saves for backward: ``{data_ptr: bytes}``
    (``sum(...values())`` is the total, each storage counted once)."""
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved


def limit_memory(gib: float) -> None:
    """Cap this process's data memory (heap and anonymous mappings, ``RLIMIT_DATA``) at ``gib``: an
    allocation past it fails with an error instead of the machine swapping or its OOM killer
    taking another process. What "does not fit in G GiB" means in a memory benchmark."""
    limit = int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


# glibc serves allocations above its mmap threshold from fresh mappings and returns them on free,
# but it raises that threshold to the largest block freed so far (up to 32 MiB); after that, large
# tensors come from its heap, and freed heap memory is often kept. Resident memory then records the
# allocator's history, not the tensors alive. A fixed threshold keeps the two the same.
LIVE_RSS_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def run_isolated(script: str, config: dict, live_rss: bool = False) -> tuple[dict | None, subprocess.CompletedProcess]:
    """Run ``python SCRIPT --single CONFIG_JSON``; its last stdout line parsed as the result (None
    if the process failed), and the finished process for the failure's reason. ``live_rss``: run
    it with ``LIVE_RSS_ENVIRONMENT``, so that its peak resident memory is its tensors' peak."""
    environment = os.environ | LIVE_RSS_ENVIRONMENT if live_rss else None
    run = subprocess.run(
        [sys.executable, script, "--single", json.dumps(config)], capture_output=True, text=True, check=False, env=environment
    )
    if run.returncode != 0:
        return None, run
    return json.loads(run.stdout.strip().splitlines()[-1]), run
