"""The S6 block's convolution and gate as autograd functions that keep only their inputs.

Through plain autograd, the Mamba-style block keeps a dozen ``float[N, L, E]`` activations per
direction for its backward pass: the convolution's padded input and output, the SiLU of the gate,
the gated product. mamba-ssm's CUDA path (``mamba_inner_fn``, ``causal_conv1d``) keeps the inputs
of these cheap elementwise steps and recomputes the rest in its backward pass; no library does it
on the CPU, so these two functions do the same here, with backward passes that reuse their
temporaries in place:

* ``causal_conv_silu(u, weight, bias)``: SiLU of the causal depthwise convolution over time of
  ``u float[N, L, E]`` (``weight float[E, K]``: frame ``t`` sees ``t - K + 1 .. t``); keeps ``u``.
* ``gated_projection(y, gate, weight)``: ``(y * silu(gate)) @ weight.T``, the block's output
  projection; keeps ``y`` and ``gate``.

Both compute their forward values with the same operations as the plain autograd versions, so
outputs are bitwise the same; tests hold their gradients to autograd's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The causal depthwise convolution over time of ``u float[N, L, E]`` with ``weight float[E,
    K]``, as ``K`` shifted multiply-adds: on the CPU 3x faster forward and backward than the
    depthwise ``Conv1d`` it equals, whose backward is slow for one channel per group."""
    length, size = u.shape[1], weight.shape[1]
    padded = F.pad(u, (0, 0, size - 1, 0))  # K - 1 zero frames before the first
    out = torch.addcmul(bias, padded[:, :length], weight[:, 0])
    for k in range(1, size):
        out = torch.addcmul(out, padded[:, k : k + length], weight[:, k])
    return out


def _silu_derivative_(x: torch.Tensor) -> torch.Tensor:
    """d silu(x) / dx = s * (1 + x * (1 - s)) with s = sigmoid(x), written over ``x`` in place."""
    s = torch.sigmoid(x)
    x.mul_(torch.rsub(s, 1)).add_(1).mul_(s)
    return x


class CausalConvSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u, weight, bias)
        return F.silu(causal_conv(u, weight, bias))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        u, weight, bias = ctx.saved_tensors
        length, size = u.shape[1], weight.shape[1]
        dconv = _silu_derivative_(causal_conv(u, weight, bias)).mul_(grad)  # d loss / d convolution output
        # Output frame t reads input frame t - s with weight[:, K - 1 - s], s = 0 .. K - 1.
        du = dconv * weight[:, size - 1]
        dweight = torch.empty_like(weight)
        dweight[:, size - 1] = (dconv * u).sum((0, 1))
        for shift in range(1, size):
            k = size - 1 - shift
            du[:, : length - shift].addcmul_(dconv[:, shift:], weight[:, k])
            dweight[:, k] = (dconv[:, shift:] * u[:, : length - shift]).sum((0, 1))
        return du, dweight, dconv.sum((0, 1))


class GatedProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y, gate, weight)
        return F.linear(F.silu(gate).mul_(y), weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, gate, weight = ctx.saved_tensors
        dweight = None
        if ctx.needs_input_grad[2]:
            gated = F.silu(gate).mul_(y)
            dweight = grad.reshape(-1, grad.shape[-1]).t() @ gated.reshape(-1, gated.shape[-1])
            del gated
        dgate = grad @ weight  # d loss / d(y * silu(gate)), float[N, L, E]; becomes d loss / d gate
        dy = F.silu(gate).mul_(dgate)
        # d silu(g) / dg = s * (1 + g * (1 - s)), s = sigmoid(g): built in one temporary.
        s = torch.sigmoid(gate)
        dgate.mul_(y).mul_(s)
        dgate.mul_(s.neg_().add_(1).mul_(gate).add_(1))
        return dy, dgate, dweight


def causal_conv_silu(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``silu(causal_conv(u, weight, bias))``, keeping only ``u`` (and the parameters) for backward."""
    return CausalConvSiLU.apply(u, weight, bias)


def gated_projection(y: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.linear(y * silu(gate), weight)``, keeping only ``y`` and ``gate`` for backward."""
    return GatedProjection.apply(y, gate, weight)
