"""The selective scan of S6 (Mamba), with the backend chosen at run time.

For every channel ``d`` and state index ``n``, over time ``t``::

    h[t] = exp(delta[t, d] * A[d, n]) * h[t - 1] + delta[t, d] * B[t, n] * u[t, d]
    y[t, d] = sum_n C[t, n] * h[t, d, n] + D[d] * u[t, d]

``delta``, ``B`` and ``C`` depend on the input (what makes the scan *selective*); ``A`` is
negative, so every state decays. Backends, one function:

* ``"cuda"``: mamba-ssm's fused kernel (``selective_scan_fn``), when mamba-ssm imports and the
  tensors are on a CUDA device;
* ``"parallel"``: mambapy's pure-PyTorch parallel (Blelloch) scan, ``O(log L)`` sequential depth;
  the default elsewhere;
* ``"sequential"``: a loop over time, the reference the tests hold the others to;
* ``"auto"``: ``"cuda"`` where it can run, ``"parallel"`` otherwise.

Shapes are batch-first, time second (mambapy's layout): ``u, delta float[B, L, D]``, ``A float[D,
N]``, ``B, C float[B, L, N]``, ``D float[D]``; the result ``y float[B, L, D]`` and, on request,
the last state ``h float[B, D, N]``.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import checkpoint

BACKENDS = ("auto", "cuda", "parallel", "sequential")


@functools.cache
def _cuda_kernel():
    """mamba-ssm's ``selective_scan_fn``, or None where mamba-ssm (or its CUDA extension) is absent."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:  # mamba-ssm cannot even be imported without its compiled CUDA extension
        return None
    return selective_scan_fn


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will run: ``"auto"`` becomes ``"cuda"`` on a CUDA device with mamba-ssm,
    ``"parallel"`` otherwise. Raises ValueError for an unknown name or a ``"cuda"`` that cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    cuda_ready = device.type == "cuda" and _cuda_kernel() is not None
    if backend == "auto":
        return "cuda" if cuda_ready else "parallel"
    if backend == "cuda" and not cuda_ready:
        raise ValueError("the 'cuda' selective-scan backend needs mamba-ssm (pip install '.[cuda]') and tensors on a CUDA device")
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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``y float[B, L, D]`` (and the last state ``float[B, D, N]`` with ``return_state``) of the
    scan above, by ``backend``. ``delta`` is used as given (apply softplus and bias before).

    ``chunk_size`` (the CPU backends, when gradients are needed): scan ``chunk_size`` frames at a
    time under gradient checkpointing, carrying the state between chunks. The states ``float[B,
    L, D, N]`` are then never kept for the backward pass, only the chunks' inputs and boundary
    states: memory ``O(L * D)`` instead of ``O(L * D * N)``, for a second forward pass in backward.
    (mamba-ssm's kernel recomputes the states in its backward pass by itself.)
    """
    backend = resolve_backend(backend, u.device)
    if backend == "cuda":
        kernel = _cuda_kernel()
        result = kernel(
            u.transpose(1, 2).contiguous(),
            delta.transpose(1, 2).contiguous(),
            A.contiguous(),
            B.transpose(1, 2).contiguous(),
            C.transpose(1, 2).contiguous(),
            D.float(),
            return_last_state=return_state,
        )
        if return_state:
            y, state = result
            return y.transpose(1, 2), state
        return result.transpose(1, 2)
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
    """The CPU backends on one stretch of time from ``initial`` (zeros when None): ``(y, last state)``."""
    decay = torch.exp(delta.unsqueeze(-1) * A)  # float[B, L, D, N]
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # float[B, L, D, N]
    if initial is not None:
        # h[0] = decay[0] * initial + drive[0]: fold the carried state into the first step.
        drive = torch.cat([(drive[:, 0] + decay[:, 0] * initial).unsqueeze(1), drive[:, 1:]], dim=1)
    if backend == "parallel":
        from mambapy.pscan import pscan  # imported here: only the CPU path needs it

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


def selective_scan_step(
    state: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step: ``state float[B, D, N]`` and ``u, delta float[B, D]``, ``B, C float[B, N]``
    give ``(y float[B, D], the next state)``. Stepping through a sequence equals the full scan."""
    state = torch.exp(delta.unsqueeze(-1) * A) * state + (delta * u).unsqueeze(-1) * B.unsqueeze(1)
    return (state @ C.unsqueeze(-1)).squeeze(-1) + D * u, state
