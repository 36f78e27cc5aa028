"""A dream's long memory: a causal S6 over every frame it has seen, read by the denoiser.

Frame stacking shows the denoiser the last K frames and nothing older: a room the agent turned away
from is gone from the dream. ``FrameMemory`` runs a causal selective scan (the Mamba-style
``S6Mixer`` of ``worldsim.models.temporal_layers``) over one token per past frame: the frame
encoded by strided convolutions to a small map, flattened, projected, plus the action taken at it.
Its state has a fixed size however long the dream runs, and the dream engine carries it from step
to step (``step``), as it carries the end model's LSTM. For training, ``forward`` runs the same scan
over a whole window at once (``step`` frame by frame gives the same outputs).

With ``recall_lags``, training also asks the memory to redraw frames it saw ``lag`` steps ago as
thumbnails (``recall_loss``): a direct signal to keep old views, where the denoising loss needs them
only on the few frames that return to a view.

The scan's output after the last frame is read out twice for the denoiser: a coarse map
(``readout_channels x readout_size^2``, upsampled to the frame) stacked with the context frames,
and a vector added to the conditioning. Both readouts start at zero, so an untrained memory leaves
the frame-stacking denoiser exactly as it was.

With ``view_bank > 0`` the memory also keeps its last ``view_bank`` frames, each filed under a key
projected from the scan's output after it, and recalls one view per step: the frames weighted by a
softmax of the query (projected from the scan's output after the last context frame) against their
keys. The scan carries where the dream has been (the turns it took); the bank carries what each
place looked like, exactly, which a fixed-size state cannot (a 64x64 frame is 12,288 numbers, the
scan's whole state 8,192). The denoiser sees the recalled view beside its context frames and has
it as a candidate of its mixture (``worldsim.models.denoiser``), so a view seen before can be
copied back. The bank's memory and a recall's cost grow linearly in ``view_bank`` (float32: 48 KiB
a frame at 64x64). WorldMem (Xiao et al., 2025) and Context-as-Memory retrieve past frames by their
known camera poses; here the keys are learnt from actions and frames: through the mixture, and
directly by ``view_match_loss`` (which frame of the window is nearest the one to draw). A plain
softmax recall blends views, and the blend shows as ghosts; ``recall_temperature`` 0 takes the
best-matching frame alone.

Keys read from the scan know where the dream is only as well as its frames tell: in a long dream
the frames are dreamed, and the scan's sense of place drifts with them. With ``place_phases > 0``
the recall also scores by a place integrated from the actions alone, never the frames: each action
turns ``place_phases`` learnt phases by a learnt step (the angles of a rotary embedding, driven by
the actions instead of the time), and a bank frame's place score is ``sum_f w_f cos(phase_f(now) -
phase_f(then))``, largest where the actions since it sum to nothing (turned 12 left and 12 right:
the same view). Where the place is a sum of actions (the room's exact 15-degree turns) the score is
exact however the frames were drawn; where it is not (walking, whose step depends on the heading)
the frame keys carry the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsim.models.temporal_layers import S6Mixer, S6State


@dataclass
class FrameMemoryConfig:
    """Architecture of ``FrameMemory``; stored in a checkpoint's config.json under ``model.memory``."""

    width: int = 256  # the token and scan width D
    state_size: int = 16  # the S6 state per inner channel (Mamba's N)
    expand: int = 2  # inner channels E = expand * D
    encoder_channels: tuple[int, ...] = (16, 32, 32)  # one stride-2 conv each: 64x64 -> 8x8
    readout_channels: int = 8  # channels of the map stacked onto the context frames
    readout_size: int = 8  # the map's side before it is upsampled to the frame's
    # Training only: heads that redraw, from the memory after frame t, a thumbnail of frame t - lag for
    # each lag here (an auxiliary loss that makes the state keep old views); () for none.
    recall_lags: tuple[int, ...] = ()
    recall_size: int = 16
    view_bank: int = 0  # frames the dream keeps to recall views from (0: none)
    key_size: int = 32  # size of the bank's keys and queries
    # The recall's softmax temperature: 1 the plain attention, lower sharper, 0 the single best-matching
    # frame (top-1: no blend of views leaks into the recall; the keys then learn from view_match_loss).
    recall_temperature: float = 1.0
    # Phases of a place integrated from the actions alone, scored beside the keys (0: the keys alone).
    place_phases: int = 0


class FrameMemory(nn.Module):
    """Tokens of ``(frame, action taken at it)``, a causal S6 over them, and readouts for the denoiser.

    Shapes: ``forward(frames float[B, L, C, H, W] in [-1, 1], actions int64[B, L])`` ->
    ``float[B, L, D]``, entry ``s`` having seen frames and actions ``0..s``. ``readout(memory
    float[B, D])`` -> ``(map float[B, readout_channels, H, W], vector float[B, embedding_dim])``.
    """

    def __init__(self, config: FrameMemoryConfig, num_actions: int, image_channels: int, image_size: int, embedding_dim: int):
        super().__init__()
        self.config, self.image_size = config, image_size
        layers, channels, size = [], image_channels, image_size
        for width in config.encoder_channels:
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.SiLU()]
            channels, size = width, size // 2
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, config.width))
        self.action_embedding = nn.Embedding(num_actions, config.width)
        self.norm = nn.LayerNorm(config.width)
        self.scan = S6Mixer(config.width, state_size=config.state_size, expand=config.expand)
        self.readout_map = nn.Linear(config.width, config.readout_channels * config.readout_size**2)
        self.readout_vector = nn.Linear(config.width, embedding_dim)
        for layer in (self.readout_map, self.readout_vector):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.recall_heads = nn.ModuleList(nn.Linear(config.width, image_channels * config.recall_size**2) for _ in config.recall_lags)
        if config.view_bank:
            self.view_key = nn.Linear(config.width, config.key_size)
            self.view_query = nn.Linear(config.width, config.key_size)
        if config.place_phases:
            self.place_step = nn.Embedding(num_actions, config.place_phases)  # the phases each action turns
            self.place_weight = nn.Parameter(torch.zeros(config.place_phases))  # w_f = softplus(.) >= 0: same place, best

    def tokens(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``float[N, C, H, W]``, ``int64[N]`` -> ``float[N, D]``."""
        return self.encoder(frames) + self.action_embedding(actions)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, length = actions.shape
        tokens = self.tokens(frames.flatten(0, 1), actions.flatten()).reshape(batch, length, -1)
        return tokens + self.scan(self.norm(tokens))

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        state = self.scan.initial_state(batch, device)
        state = {"memory_conv": state.conv, "memory_scan": state.scan}
        if self.config.view_bank:
            size, channels = self.config.view_bank, self.encoder[0].in_channels
            state |= {
                "memory_views": torch.zeros(batch, size, channels, self.image_size, self.image_size, device=device),
                "memory_view_keys": torch.zeros(batch, size, self.config.key_size, device=device),
                "memory_view_count": torch.zeros(batch, dtype=torch.int64, device=device),
            }
            if self.config.place_phases:
                phases = self.config.place_phases
                state |= {
                    "memory_place": torch.zeros(batch, phases, device=device),  # after the actions so far
                    "memory_view_places": torch.zeros(batch, size, phases, device=device),
                }
        return state

    def step(
        self, frame: torch.Tensor, action: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One frame ``float[B, C, H, W]`` and the action taken at it ``int64[B]`` -> (``float[B, D]``,
        the next state); frame by frame, the same as ``forward`` on the whole sequence."""
        token = self.tokens(frame, action)
        mixed, scan_state = self.scan.step(self.norm(token), S6State(state["memory_conv"], state["memory_scan"]))
        memory, next_state = token + mixed, {"memory_conv": scan_state.conv, "memory_scan": scan_state.scan}
        if self.config.view_bank:
            # The frame goes to the oldest slot, out of place (the engine may run with gradients).
            count = state["memory_view_count"]
            slot = F.one_hot(count % self.config.view_bank, self.config.view_bank).bool()  # [B, N]
            next_state |= {
                "memory_views": torch.where(slot[..., None, None, None], frame[:, None], state["memory_views"]),
                "memory_view_keys": torch.where(slot[..., None], self.view_key(memory)[:, None], state["memory_view_keys"]),
                "memory_view_count": count + 1,
            }
            if self.config.place_phases:  # the frame is filed at the place before its action, then the action moves on
                place = state["memory_place"]
                next_state |= {
                    # wrapped to [0, 2 pi): the cosines are unchanged, and a long dream's phases keep float32's precision
                    "memory_place": torch.remainder(place + self.place_step(action), 2 * math.pi),
                    "memory_view_places": torch.where(slot[..., None], place[:, None], state["memory_view_places"]),
                }
        return memory, next_state

    def recalled_view(self, memory: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """The view recalled from the bank in ``state`` (``step``'s, after the last context frame) by
        ``memory float[B, D]`` (``step``'s output): ``float[B, C, H, W]``."""
        return self.recalled_views(self.recall_scores(memory, state)[:, None], state["memory_views"])[:, 0]

    def recall_scores(self, memory: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """``recalled_view``'s scores over the bank's slots: ``float[B, N]``, -inf at empty slots."""
        filled = torch.arange(self.config.view_bank, device=memory.device) < state["memory_view_count"][:, None]  # [B, N]
        scores = self._key_scores(self.view_query(memory)[:, None], state["memory_view_keys"])[:, 0]
        if self.config.place_phases:
            scores = scores + self._place_scores(state["memory_place"][:, None] - state["memory_view_places"])
        return scores.masked_fill(~filled, float("-inf"))

    def window_scores(self, memory: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """For training, the recall's scores before frames ``targets int64[B, P]`` of a window whose
        ``memory float[B, L, D]`` (``forward``'s) read ``actions int64[B, L]``: the bank holds every frame
        before the target, each filed under the key of the memory after it; the query is the memory after
        the frame before the target. ``float[B, P, L]``, -inf at and after the target; the same as
        ``recall_scores`` after stepping through the window, while it fits the bank."""
        before_target = (targets - 1)[..., None]
        queries = self.view_query(memory.gather(1, before_target.expand(-1, -1, memory.shape[-1])))  # [B, P, key]
        scores = self._key_scores(queries, self.view_key(memory))
        if self.config.place_phases:
            moved = self.place_step(actions).cumsum(dim=1)  # [B, L, F]: the place after each frame's action
            places = torch.cat([torch.zeros_like(moved[:, :1]), moved[:, :-1]], dim=1)  # each frame's own place
            now = moved.gather(1, before_target.expand(-1, -1, moved.shape[-1]))  # [B, P, F]: the target's place
            scores = scores + self._place_scores(now[:, :, None] - places[:, None])
        before = torch.arange(memory.shape[1], device=memory.device) < targets[..., None]  # [B, P, L]
        return scores.masked_fill(~before, float("-inf"))

    def recalled_views(self, scores: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The views ``float[B, N, C, H, W]`` weighted by the tempered softmax of ``scores float[B, P,
        N]`` (``window_scores``' or ``recall_scores``'; at temperature 0: the best-scoring view alone):
        ``float[B, P, C, H, W]``."""
        temperature = self.config.recall_temperature
        if temperature > 0:
            weights = (scores / temperature).softmax(dim=-1)
        else:
            weights = F.one_hot(scores.argmax(dim=-1), scores.shape[-1]).to(views.dtype)
        return torch.einsum("bpn,bnchw->bpchw", weights, views)

    def view_match_loss(self, scores: torch.Tensor, frames: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        """Training the recall directly: the cross-entropy of ``window_scores``' ``scores float[B, P, L]``
        over the window's ``frames float[B, L, C, H, W]`` against those nearest, in squared error, to
        ``wanted float[B, P, C, H, W]`` (the clean frames being denoised); ties (a view seen twice) share
        the target. On a return the nearest frame is the same view, bit for bit; elsewhere it is mostly
        the frame before."""
        distances = (frames[:, None] - wanted[:, :, None]).square().flatten(3).mean(-1)  # [B, P, L]
        distances = distances.masked_fill(scores.isneginf(), float("inf"))
        nearest = distances <= distances.amin(dim=-1, keepdim=True)
        log_weights = scores.log_softmax(dim=-1)
        return -log_weights.masked_fill(~nearest, float("-inf")).logsumexp(dim=-1).mean()

    def _key_scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scaled dot products of ``queries float[B, P, k]`` with ``keys float[B, N, k]``: ``float[B, P, N]``."""
        return torch.einsum("bpk,bnk->bpn", queries, keys) / self.config.key_size**0.5

    def _place_scores(self, moved: torch.Tensor) -> torch.Tensor:
        """``sum_f w_f cos(moved_f)`` of the phases ``moved float[..., F]`` turned since a frame: ``float[...]``."""
        return torch.cos(moved) @ F.softplus(self.place_weight)

    def recall_loss(self, memory: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """The auxiliary loss: from ``memory float[B, L, D]`` (entry ``s`` after frame ``s`` of ``frames
        float[B, L, C, H, W]``), redraw each ``recall_lags`` frame before it as a ``recall_size`` thumbnail."""
        size, losses = self.config.recall_size, []
        thumbnails = F.adaptive_avg_pool2d(frames.flatten(0, 1), size).unflatten(0, frames.shape[:2])  # [B, L, C, s, s]
        for lag, head in zip(self.config.recall_lags, self.recall_heads, strict=True):
            if lag >= frames.shape[1]:
                continue
            drawn = head(memory[:, lag:]).unflatten(-1, thumbnails.shape[2:])
            losses.append(F.mse_loss(drawn, thumbnails[:, :-lag]))
        return torch.stack(losses).mean() if losses else memory.new_zeros(())

    def readout(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.config.readout_size
        coarse = self.readout_map(memory).reshape(-1, self.config.readout_channels, size, size)
        return F.interpolate(coarse, size=(self.image_size, self.image_size), mode="nearest"), self.readout_vector(memory)
