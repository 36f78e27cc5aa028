"""The selective scan's C++ CPU kernel (``csrc/selective_scan_cpu.cpp``): built at first use, and
its autograd Function.

Why by hand: mamba-ssm's fused kernel is CUDA only, and on the CPU a scan written in PyTorch ops
(``"blocked"``, ``"parallel"``) makes many passes over the states, each one an elementwise op bound
by memory traffic. The kernel makes one pass forward and one backward per sequence, with every
intermediate in the cache, and the compiler vectorises its inner loops (the exponential through
glibc's vector maths). Like mamba-ssm's, it keeps only the inputs for backward and recomputes the
states there.

``torch.utils.cpp_extension.load`` compiles it once per machine (about a minute; cached under
``~/.cache/torch_extensions``, rebuilt when the source changes). Where it cannot be built (no C++
compiler), ``cpu_kernel`` returns None after one warning and ``"auto"`` falls back to the
``"blocked"`` scan.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "selective_scan_cpu.cpp"
# -ffast-math lets the compiler vectorise expf (glibc's libmvec) and reorder the sums over channels.
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"]

logger = logging.getLogger(__name__)


@functools.cache
def cpu_kernel():
    """The compiled kernel module (``forward``, ``backward``), or None where it cannot be built."""
    try:
        # Its import warns that no CUDA runtime is found, which is beside the point for a CPU kernel.
        cpp_extension_logger = logging.getLogger("torch.utils.cpp_extension")
        level = cpp_extension_logger.level
        cpp_extension_logger.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load
        finally:
            cpp_extension_logger.setLevel(level)
        logger.info("building the selective scan's CPU kernel (once per machine, about a minute)")
        return load(name="worldsim_selective_scan_cpu", sources=[str(SOURCE)], extra_cflags=CFLAGS, verbose=False)
    except Exception as error:  # noqa: BLE001 - no compiler, no ninja, a failed build: the PyTorch scans still work
        warnings.warn(
            f"the selective scan's C++ CPU kernel could not be built ({type(error).__name__}: {error}); using the 'blocked' scan instead"
        )
        return None


class KernelScan(torch.autograd.Function):
    """The ``"cpp"`` backend: ``(u float[B, L, D], delta float[B, L, D], A float[D, N], B float[B, L,
    N], C float[B, L, N], D float[D], initial float[B, D, N] or None, delta_softplus) -> (y float[B,
    L, D], last state float[B, D, N])``, float32 on the CPU. With ``delta_softplus`` the kernel
    applies softplus to ``delta`` itself. Keeps only its inputs for backward."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, initial, delta_softplus):
        y, last = cpu_kernel().forward(*_kernel_layout(u, delta, A, B, C, D, initial), delta_softplus)
        ctx.delta_softplus = delta_softplus
        ctx.save_for_backward(u, delta, A, B, C, D, initial)
        return y, last.transpose(1, 2)

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, initial = ctx.saved_tensors
        du, ddelta, dAt, dB, dC, dD, dinitial = cpu_kernel().backward(
            *_kernel_layout(u, delta, A, B, C, D, initial), ctx.delta_softplus, dy.contiguous(), dlast.transpose(1, 2).contiguous()
        )
        return du, ddelta, dAt.t(), dB, dC, dD, None if initial is None else dinitial.transpose(1, 2), None


def _kernel_layout(u, delta, A, B, C, D, initial) -> tuple:
    """The inputs as the kernel reads them: contiguous, ``A`` as ``float[N, D]`` and the initial state
    (or None) as ``float[B, N, D]``, channels innermost."""
    initial = None if initial is None else initial.transpose(1, 2).contiguous()
    return u.contiguous(), delta.contiguous(), A.t().contiguous(), B.contiguous(), C.contiguous(), D.contiguous(), initial
