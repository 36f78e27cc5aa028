"""Temporal layers for video diffusion: S6, bidirectional S6 and rotary attention, one interface.

A space-time U-Net mixes information across frames with a temporal layer after its spatial blocks
at every level (the SSM-meets-video-diffusion design). Each pixel position is its own sequence
over frames: features ``float[B, C, F, H, W]`` become ``B * H * W`` sequences of ``F`` frames of
``C`` channels, the mixer runs over them, and the result is added back (pre-norm residual; the
output projection starts at zero, so a new temporal layer starts as the identity).

Mixers, over sequences ``float[N, L, C]``:

* ``S6Mixer``: the Mamba-style block around the selective scan: an input projection to two
  branches, a short causal depthwise convolution and SiLU on one, the selective scan
  (``selective_scan``, backend chosen at run time), gated by SiLU of the other, and an output
  projection. Causal; ``step`` carries its state frame by frame.
* ``BiS6Mixer``: a second S6 on the time-reversed sequence, summed with the first
  (bidirectional, for whole clips).
* ``AttentionMixer``: multi-head self-attention over frames with rotary position embeddings
  (diffusers' ``get_1d_rotary_pos_embed`` / ``apply_rotary_emb``), the baseline; optionally causal.

Memory and time: attention's are quadratic in the number of frames, the scans' linear. The S6
block's convolution and gate keep only their inputs for backward (``s6_block_ops``); with
``recompute=True`` a mixer keeps only its own input and runs again in the backward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb, get_1d_rotary_pos_embed
from torch import nn
from torch.utils.checkpoint import checkpoint

from worldsim.models.s6_block_ops import causal_conv_silu, gated_projection
from worldsim.models.selective_scan import selective_scan, selective_scan_step

KINDS = ("attn", "s6", "bi-s6")


def _mixed(mix, x: torch.Tensor, recompute: bool) -> torch.Tensor:
    """``mix(x)``; with ``recompute`` (and gradients on) under gradient checkpointing: only ``x``
    kept for the backward pass, the mixer's activations recomputed there (one direction of a bi-S6
    at a time). The time of a second forward pass for the memory of the activations: for S6 they
    are what its memory is made of; for attention the F x F matrix comes back in the backward pass,
    so its peak stays."""
    return checkpoint(mix, x, use_reentrant=False) if recompute and torch.is_grad_enabled() else mix(x)


@dataclass
class S6State:
    """What a causal S6 carries from one frame to the next: the last ``conv_size - 1`` inputs of
    its convolution (``float[N, E, K - 1]``) and the scan's state (``float[N, E, state_size]``)."""

    conv: torch.Tensor
    scan: torch.Tensor


class S6Mixer(nn.Module):
    """Mamba-style S6 block over ``float[N, L, C]`` (causal). ``expand`` widens the inner channels
    ``E = expand * C``; ``state_size`` is the scan's ``N``; ``backend`` the selective scan's;
    ``scan_chunk`` the checkpointed chunk length of the ``"parallel"`` and ``"sequential"`` scans
    (None: keep every state for backward, ``state_size`` times the memory; the ``"blocked"`` CPU
    default and mamba-ssm's kernel recompute the states by themselves). ``recompute``: keep only
    the block's input for the backward pass and run the block again there (``_mixed``)."""

    def __init__(
        self,
        channels: int,
        state_size: int = 16,
        expand: int = 2,
        conv_size: int = 4,
        backend: str = "auto",
        scan_chunk: int | None = 64,
        recompute: bool = False,
    ):
        super().__init__()
        inner = expand * channels
        self.inner, self.state_size, self.conv_size, self.backend, self.scan_chunk = inner, state_size, conv_size, backend, scan_chunk
        self.recompute = recompute
        self.dt_rank = math.ceil(channels / 16)
        self.in_proj = nn.Linear(channels, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, conv_size, groups=inner, padding=conv_size - 1)  # applied by causal_conv_silu
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # Mamba's initialisation: time steps log-uniform in [1e-3, 1e-1] (softplus inverted into the
        # bias), A = -[1 .. N] per channel (stored as a log, so A stays negative), D = 1.
        dt = torch.exp(torch.rand(inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, channels, bias=False)

    def _scan_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scan's ``delta`` before its softplus (the scan applies it), ``B`` and ``C``."""
        delta, B, C = self.x_proj(x).split([self.dt_rank, self.state_size, self.state_size], dim=-1)
        return self.dt_proj(delta), B, C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mixed(self._mix, x, self.recompute)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        u = causal_conv_silu(u, self.conv.weight.squeeze(1), self.conv.bias)
        delta, B, C = self._scan_inputs(u)
        y = selective_scan(
            u, delta, -torch.exp(self.A_log), B, C, self.D, backend=self.backend, chunk_size=self.scan_chunk, delta_softplus=True
        )
        return gated_projection(y, gate, self.out_proj.weight)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> S6State:
        return S6State(
            torch.zeros(batch, self.inner, self.conv_size - 1, device=device),
            torch.zeros(batch, self.inner, self.state_size, device=device),
        )

    def step(self, x: torch.Tensor, state: S6State) -> tuple[torch.Tensor, S6State]:
        """One frame ``float[N, C]`` -> ``(float[N, C], next state)``; the same as ``forward`` on the
        whole sequence, one frame at a time."""
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        window = torch.cat([state.conv, u.unsqueeze(-1)], dim=-1)  # float[N, E, K]
        u = F.silu((window * self.conv.weight.squeeze(1)).sum(-1) + self.conv.bias)
        delta, B, C = self._scan_inputs(u)
        y, scan = selective_scan_step(state.scan, u, F.softplus(delta), -torch.exp(self.A_log), B, C, self.D)
        return self.out_proj(y * F.silu(gate)), S6State(window[..., 1:], scan)


class BiS6Mixer(nn.Module):
    """Bidirectional S6 over ``float[N, L, C]``: one S6 forward in time, one on the reversed
    sequence, summed. Every output frame sees the whole clip."""

    def __init__(self, channels: int, **options):
        super().__init__()
        self.forward_scan = S6Mixer(channels, **options)
        self.backward_scan = S6Mixer(channels, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_scan(x) + self.backward_scan(x.flip(1)).flip(1)


class AttentionMixer(nn.Module):
    """Multi-head self-attention over ``float[N, L, C]`` with rotary position embeddings.

    ``expand`` widens queries, keys and values to ``E = expand * C`` (as ``S6Mixer``'s ``expand``
    widens its inner channels): the way to compare the two at equal parameters. ``recompute`` as
    ``S6Mixer``'s."""

    def __init__(
        self, channels: int, heads: int = 4, causal: bool = False, theta: float = 10000.0, expand: int = 1, recompute: bool = False
    ):
        super().__init__()
        inner = expand * channels
        if inner % heads or (inner // heads) % 2:
            raise ValueError(f"attention needs its width ({inner}) divisible by heads ({heads}) into an even head size")
        self.heads, self.causal, self.theta, self.inner, self.recompute = heads, causal, theta, inner, recompute
        self.qkv = nn.Linear(channels, 3 * inner, bias=False)
        self.out_proj = nn.Linear(inner, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mixed(self._mix, x, self.recompute)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, self.inner // self.heads).permute(2, 0, 3, 1, 4)
        rotary = get_1d_rotary_pos_embed(self.inner // self.heads, length, theta=self.theta, use_real=True)
        rotary = tuple(part.to(x.device, x.dtype) for part in rotary)
        q, k = apply_rotary_emb(q, rotary), apply_rotary_emb(k, rotary)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.out_proj(y.transpose(1, 2).reshape(batch, length, self.inner))


class TemporalLayer(nn.Module):
    """A temporal layer over video features ``float[B, C, F, H, W]`` -> the same shape.

    ``kind``: ``"attn"`` (rotary attention), ``"s6"`` (causal S6) or ``"bi-s6"``; ``options`` go to
    the mixer (``state_size``, ``expand``, ``conv_size``, ``backend`` for the scans; ``heads``,
    ``causal``, ``expand`` for attention; ``recompute`` for both: gradient checkpointing per mixer). Pre-norm residual, zero-initialised output: the identity at first.
    """

    def __init__(self, kind: str, channels: int, **options):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown temporal layer {kind!r}: choose one of {', '.join(KINDS)}")
        self.kind = kind
        self.norm = nn.LayerNorm(channels)
        self.mixer = {"attn": AttentionMixer, "s6": S6Mixer, "bi-s6": BiS6Mixer}[kind](channels, **options)
        for projection in self.mixer.modules():
            if hasattr(projection, "out_proj"):
                nn.init.zeros_(projection.out_proj.weight)

    @staticmethod
    def _sequences(x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        return x.permute(0, 3, 4, 2, 1).reshape(batch * height * width, frames, channels)  # b c f h w -> (b h w) f c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        sequences = self._sequences(x)
        mixed = self.mixer(self.norm(sequences))
        return x + mixed.reshape(batch, height, width, frames, channels).permute(0, 4, 3, 1, 2)

    def initial_state(self, batch: int, height: int, width: int, device: torch.device | str = "cpu") -> S6State:
        """The empty state of a causal S6 layer for ``batch`` videos of ``height x width`` features."""
        if self.kind != "s6":
            raise ValueError(f"only a causal S6 layer steps frame by frame, this one is {self.kind!r}")
        return self.mixer.initial_state(batch * height * width, device)

    def step(self, frame: torch.Tensor, state: S6State) -> tuple[torch.Tensor, S6State]:
        """One frame of features ``float[B, C, H, W]`` through a causal S6 layer, carrying ``state``:
        the same as ``forward`` on the whole video, one frame at a time."""
        if self.kind != "s6":
            raise ValueError(f"only a causal S6 layer steps frame by frame, this one is {self.kind!r}")
        batch, channels, height, width = frame.shape
        pixels = frame.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
        mixed, state = self.mixer.step(self.norm(pixels), state)
        return frame + mixed.reshape(batch, height, width, channels).permute(0, 3, 1, 2), state
