"""The selective scan of S6 (Mamba), with the backend chosen at run time.

For every channel ``d`` and state index ``n``, over time ``t``::

    h[t] = exp(delta[t, d] * A[d, n]) * h[t - 1] + delta[t, d] * B[t, n] * u[t, d]
    y[t, d] = sum_n C[t, n] * h[t, d, n] + D[d] * u[t, d]

``delta``, ``B`` and ``C`` depend on the input (what makes the scan *selective*); ``A`` is
negative, so every state decays. Backends, one function:

* ``"cuda"``: mamba-ssm's fused kernel (``selective_scan_fn``), when mamba-ssm imports and the
  tensors are on a CUDA device;
* ``"cpp"``: the CPU default where a C++ compiler is present: a C++ kernel built at first use
  (``selective_scan_kernel``), one pass forward and one backward per sequence with the states in
  the cache. The scan alone is 4x faster than ``"blocked"`` at a video layer's shapes, an S6
  layer's training step 1.9-3.6x (``benchmarks/temporal_layers.py``);
* ``"blocked"``: the CPU default where the kernel cannot be built. A loop over time, run on blocks
  of sequences (and chunks of time) small enough to stay in the CPU's cache, with a hand-written
  backward pass (a reverse-time scan) that recomputes the states block by block instead of keeping
  them, as mamba-ssm's kernel does on the GPU: memory ``O(L * D)`` instead of ``O(L * D * N)``, and an S6 layer's training
  step 2.1-4.8x faster than through the parallel scan on one CPU thread
  (``benchmarks/temporal_layers.py``). Elementwise PyTorch ops on a whole ``float[B, L, D, N]``
  are bound by memory traffic; on a block that fits in cache they are not.
* ``"parallel"``: mambapy's pure-PyTorch parallel (Blelloch) scan, ``O(log L)`` sequential depth;
  the default on a GPU without mamba-ssm (where a loop over time is many small launches);
* ``"sequential"``: a loop over time through autograd, the reference the tests hold the others to;
* ``"auto"``: ``"cuda"`` where it can run, ``"parallel"`` on other GPUs, ``"cpp"`` on the CPU
  (``"blocked"`` where the kernel cannot be built).

Shapes are batch-first, time second (mambapy's layout): ``u, delta float[B, L, D]``, ``A float[D,
N]``, ``B, C float[B, L, N]``, ``D float[D]``; the result ``y float[B, L, D]`` and, on request,
the last state ``h float[B, D, N]``.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import checkpoint

from worldsim.models.selective_scan_kernel import KernelScan, cpu_kernel

BACKENDS = ("auto", "cuda", "cpp", "blocked", "parallel", "sequential")

# States per block of the "blocked" backend: 2^18 float32 = 1 MiB, inside a core's L2 cache.
BLOCK_ELEMENTS = 1 << 18
# The smallest time step of one block worth a Python-level op (below it, overhead dominates).
MIN_STEP_ELEMENTS = 1 << 14


@functools.cache
def _cuda_kernel():
    """mamba-ssm's ``selective_scan_fn``, or None where mamba-ssm (or its CUDA extension) is absent."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:  # mamba-ssm cannot even be imported without its compiled CUDA extension
        return None
    return selective_scan_fn


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The backend that will run: ``"auto"`` becomes ``"cuda"`` on a CUDA device with mamba-ssm,
    ``"parallel"`` on other accelerators, ``"cpp"`` on the CPU for float32 where the kernel builds,
    else ``"blocked"``. Raises ValueError for an unknown name, or a ``"cuda"`` or ``"cpp"`` that
    cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    cuda_ready = device.type == "cuda" and _cuda_kernel() is not None

    def cpp_ready() -> bool:  # a function: asking builds the kernel, so only where "cpp" could run
        return device.type == "cpu" and dtype == torch.float32 and cpu_kernel() is not None

    if backend == "auto":
        if device.type == "cpu":
            return "cpp" if cpp_ready() else "blocked"
        return "cuda" if cuda_ready else "parallel"
    if backend == "cuda" and not cuda_ready:
        raise ValueError("the 'cuda' selective-scan backend needs mamba-ssm (pip install '.[cuda]') and tensors on a CUDA device")
    if backend == "cpp" and not cpp_ready():
        raise ValueError("the 'cpp' selective-scan backend needs float32 CPU tensors and a C++ compiler to build its kernel: use 'blocked'")
    return backend


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    backend: str = "auto",
    return_state: bool = False,
    chunk_size: int | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``y float[B, L, D]`` (and the last state ``float[B, D, N]`` with ``return_state``) of the
    scan above, by ``backend``. ``delta`` is used as given, or through softplus with
    ``delta_softplus`` (as mamba-ssm's kernel takes it; the ``"cuda"`` and ``"cpp"`` kernels apply it
    on the fly, the others first).

    ``chunk_size`` (the ``"parallel"`` and ``"sequential"`` backends, when gradients are needed):
    scan ``chunk_size`` frames at a time under gradient checkpointing, carrying the state between
    chunks. The states ``float[B, L, D, N]`` are then never kept for the backward pass, only the
    chunks' inputs and boundary states: memory ``O(L * D)`` instead of ``O(L * D * N)``, for a
    second forward pass in backward. (mamba-ssm's kernel and the ``"cpp"`` and ``"blocked"``
    backends recompute the states in their backward passes by themselves; they ignore it.)
    """
    backend = resolve_backend(backend, u.device, u.dtype)
    if backend == "cuda":
        kernel = _cuda_kernel()
        result = kernel(
            u.transpose(1, 2).contiguous(),
            delta.transpose(1, 2).contiguous(),
            A.contiguous(),
            B.transpose(1, 2).contiguous(),
            C.transpose(1, 2).contiguous(),
            D.float(),
            delta_softplus=delta_softplus,
            return_last_state=return_state,
        )
        if return_state:
            y, state = result
            return y.transpose(1, 2), state
        return result.transpose(1, 2)
    if backend == "cpp":
        y, state = KernelScan.apply(u, delta, A, B, C, D, None, delta_softplus)
        return (y, state) if return_state else y
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    if backend == "blocked":
        y, state = BlockedScan.apply(u, delta, A, B, C, D, None)
        return (y, state) if return_state else y
    length = u.shape[1]
    if chunk_size is None or not torch.is_grad_enabled():
        y, state = _scan(u, delta, A, B, C, D, None, backend)
    else:
        outputs, state = [], None
        for start in range(0, length, chunk_size):
            part = slice(start, start + chunk_size)
            y_part, state = checkpoint(_scan, u[:, part], delta[:, part], A, B[:, part], C[:, part], D, state, backend, use_reentrant=False)
            outputs.append(y_part)
        y = torch.cat(outputs, dim=1)
    return (y, state) if return_state else y


def _scan(u, delta, A, B, C, D, initial: torch.Tensor | None, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The "parallel" and "sequential" backends on one stretch of time from ``initial`` (zeros when
    None): ``(y, last state)``, through autograd."""
    decay = torch.exp(delta.unsqueeze(-1) * A)  # float[B, L, D, N]
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # float[B, L, D, N]
    if initial is not None:
        # h[0] = decay[0] * initial + drive[0]: fold the carried state into the first step.
        drive = torch.cat([(drive[:, 0] + decay[:, 0] * initial).unsqueeze(1), drive[:, 1:]], dim=1)
    if backend == "parallel":
        from mambapy.pscan import pscan  # imported here: only this backend needs it

        states = pscan(decay, drive)
    else:
        state = torch.zeros_like(drive[:, 0])
        steps = []
        for t in range(u.shape[1]):
            state = decay[:, t] * state + drive[:, t]
            steps.append(state)
        states = torch.stack(steps, dim=1)
    # The last state copied out: a view would keep every state of the stretch alive (and saved for
    # backward, when it is the next chunk's initial state).
    return (states @ C.unsqueeze(-1)).squeeze(-1) + D * u, states[:, -1].clone()


def _blocks(batch: int, length: int, channels: int, state_size: int, budget: int) -> tuple[list[tuple[slice, slice]], int]:
    """How the "blocked" scan cuts its work: ``(rows, channels)`` slices covering ``batch x
    channels``, and a chunk length in time, so that one chunk's states ``float[rows, chunk, N,
    channels]`` hold about ``budget`` elements. Whole sequences when they fit; otherwise chunks of
    time, on enough rows that one time step is still a sizeable op (``MIN_STEP_ELEMENTS``: a loop
    of tiny ops is bound by Python's overhead). Channels are split only when one time step of one
    sequence exceeds the budget, in groups of at least 16 (one vector register)."""
    width = channels if state_size * channels <= budget else max(16, budget // state_size)
    per_step = state_size * width
    if length * per_step <= budget:
        rows, chunk = max(1, budget // (length * per_step)), length
    else:
        rows = min(batch, max(1, -(-MIN_STEP_ELEMENTS // per_step)))
        chunk = max(1, budget // (rows * per_step))
    blocks = [(slice(r, r + rows), slice(c, c + width)) for r in range(0, batch, rows) for c in range(0, channels, width)]
    return blocks, chunk


def _block_states(u, delta, At, B, initial):
    """The decays ``a`` and states ``h`` of one block, both ``float[b, L, N, d]``: the channel axis
    innermost, so every broadcast (of ``B`` over channels, of ``delta`` over states) runs along
    contiguous memory."""
    a = torch.exp(delta.unsqueeze(2) * At)
    h = (delta * u).unsqueeze(2) * B.unsqueeze(-1)
    if initial is not None:
        h[:, 0].addcmul_(a[:, 0], initial)
    for t in range(1, u.shape[1]):
        h[:, t].addcmul_(a[:, t], h[:, t - 1])
    return a, h


class BlockedScan(torch.autograd.Function):
    """The ``"blocked"`` backend: ``(u, delta, A, B, C, D, initial or None) -> (y float[B, L, D],
    last state float[B, D, N])``, block by block and chunk by chunk in time (``_blocks``), nothing
    but the inputs kept for backward. The backward pass recomputes a block's chunk boundary states,
    then walks its chunks from the last, with ``g[t] = dLoss/dh[t]``::

        g[t] = C[t] * dy[t] + a[t + 1] * g[t + 1]                 (the reverse-time scan)
        dC[t] = sum_d h[t] * dy[t]      dB[t] = sum_d g[t] * delta[t] * u[t]
        d(delta A)[t] = g[t] * a[t] * h[t - 1]   ->  dA, d delta    (h[-1] = the chunk's initial state)

    and hands ``a[0] * g[0]``, the gradient of its initial state, to the chunk before as the
    gradient of that chunk's last state.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, initial):
        batch, length, channels = u.shape
        At = A.t().contiguous()  # float[N, D]
        y = torch.empty_like(u)
        last = u.new_empty(batch, A.shape[1], channels)  # float[B, N, D]
        blocks, chunk = _blocks(batch, length, channels, A.shape[1], BLOCK_ELEMENTS)
        for rows, cols in blocks:
            state = None if initial is None else initial[rows, cols].transpose(1, 2)
            for t in range(0, length, chunk):
                time = slice(t, t + chunk)
                _, h = _block_states(u[rows, time, cols], delta[rows, time, cols], At[:, cols], B[rows, time], state)
                y[rows, time, cols] = (h * C[rows, time].unsqueeze(-1)).sum(2)
                state = h[:, -1].clone()  # a copy: a view would keep the chunk's states alive
            last[rows, :, cols] = state
        y += D * u
        ctx.save_for_backward(u, delta, A, B, C, D, initial)
        return y, last.transpose(1, 2)

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, initial = ctx.saved_tensors
        batch, length, channels = u.shape
        At = A.t().contiguous()
        du, ddelta, dB, dC = torch.empty_like(u), torch.empty_like(u), torch.zeros_like(B), torch.zeros_like(C)
        dAt = torch.zeros_like(At)
        dinitial = None if initial is None else torch.empty_like(initial)
        blocks, chunk = _blocks(batch, length, channels, A.shape[1], BLOCK_ELEMENTS)
        for rows, cols in blocks:
            # Each chunk's initial state (None: zeros), recomputed.
            starts = [None if initial is None else initial[rows, cols].transpose(1, 2)]
            for t in range(0, length - chunk, chunk):
                time = slice(t, t + chunk)
                starts.append(
                    _block_states(u[rows, time, cols], delta[rows, time, cols], At[:, cols], B[rows, time], starts[-1])[1][:, -1].clone()
                )
            g_last = dlast[rows, cols].transpose(1, 2)  # zeros where the last state went unused (autograd fills them)
            for t, h0 in zip(reversed(range(0, length, chunk)), reversed(starts), strict=True):
                time = slice(t, t + chunk)
                u_b, delta_b, At_b, B_b, C_b, dy_b = (
                    u[rows, time, cols],
                    delta[rows, time, cols],
                    At[:, cols],
                    B[rows, time],
                    C[rows, time],
                    dy[rows, time, cols],
                )
                a, h = _block_states(u_b, delta_b, At_b, B_b, h0)
                g = dy_b.unsqueeze(2) * C_b.unsqueeze(-1)
                g[:, -1] += g_last
                for step in range(g.shape[1] - 2, -1, -1):
                    g[:, step].addcmul_(a[:, step + 1], g[:, step + 1])
                dC[rows, time] += (h * dy_b.unsqueeze(2)).sum(-1)
                dB[rows, time] += (g * (delta_b * u_b).unsqueeze(2)).sum(-1)
                g_drive = (g * B_b.unsqueeze(-1)).sum(2)  # d loss / d(delta * u), float[b, chunk, d]
                g_decay = g * a  # becomes d loss / d(delta A) once multiplied by the previous state
                g_last = g_decay[:, 0].clone()  # d loss / d(this chunk's initial state)
                if h0 is not None:
                    g_decay[:, 0] *= h0
                else:
                    g_decay[:, 0] = 0
                g_decay[:, 1:] *= h[:, :-1]
                ddelta[rows, time, cols] = (g_decay * At_b).sum(2) + g_drive * u_b
                du[rows, time, cols] = g_drive * delta_b
                dAt[:, cols] += (g_decay * delta_b.unsqueeze(2)).sum((0, 1))
            if initial is not None:
                dinitial[rows, cols] = g_last.transpose(1, 2)
        du += D * dy
        return du, ddelta, dAt.t(), dB, dC, (dy * u).sum((0, 1)), dinitial


def selective_scan_step(
    state: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step: ``state float[B, D, N]`` and ``u, delta float[B, D]``, ``B, C float[B, N]``
    give ``(y float[B, D], the next state)``. Stepping through a sequence equals the full scan."""
    state = torch.exp(delta.unsqueeze(-1) * A) * state + (delta * u).unsqueeze(-1) * B.unsqueeze(1)
    return (state @ C.unsqueeze(-1)).squeeze(-1) + D * u, state
