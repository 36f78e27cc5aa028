"""The ground reward: the ground is drawn with the game's own tile. No network; its tiles come from real frames.

Super Mario Bros draws its ground as one repeating tile. At 64x64 the bottom 8 rows of a real frame
repeat every 4 columns exactly (89.9% of the frames of ``worldsim/mario-explore-v0``; the rest
show a pit, a pipe or Mario's feet there), in one of 4 looks: the NES scrolls by its own pixels, a
quarter of one here, so the area-downscaled tile has 4 sub-pixel phases. The dream draws that band
blurred and irregular, and it is what a judge of long dreams reads: replacing a long dream's band
by the nearest real tile band turns that judge's verdict from dreamed to real (BENCHMARKS.md,
"Reward-gradient alignment").

The reward is minus the distance (levels of 255) of the generated frame's band from the nearest
tile band, one tile and one shift for the whole band: the mean over the band's groups of
``period`` columns of each group's mean absolute difference, each capped at ``cap`` so that a
group that is no ground (a pit, a pipe, Mario) neither counts nor pulls. 0 is the real game's
ground; defined for every sample.

The tiles are estimated from real frames (``estimate_ground_tiles``) and shipped as
``worldsim/checkpoints/ground-mario-v0`` (``scripts/estimate_ground_tiles.py`` writes it).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from worldsim.core.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from worldsim.core.checkpoint_kinds import GROUND_TILES, require_kind
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict
from worldsim.errors import WorldsimError
from worldsim.rewards.scroll import LEVELS
from worldsim.rewards.transition import Scores, Transition

SHIPPED_TILES = "ground-mario-v0"


@dataclass
class GroundTilesConfig:
    rows: int = 8  # the band at the bottom of the frame
    period: int = 4  # columns per tile (a 16-pixel NES ground block at 64x64)
    cap: float = 30.0  # levels of 255: a column group farther than this from the tile is no ground
    tolerance: float = 1.0  # estimation: a real band counts as ground when it repeats within this (levels)


def estimate_ground_tiles(frames: np.ndarray, config: GroundTilesConfig) -> tuple[np.ndarray, dict]:
    """The distinct tiles of the ground in real ``frames uint8[N, H, W, C]``: ``(uint8[P, rows, period,
    C], statistics)``. A frame's band is ground when it repeats every ``period`` columns to within
    ``tolerance``; its first ``period`` columns are then a tile at some shift, and tiles equal up to a
    shift (within ``tolerance``) are one. Tiles are sorted by how many frames show them; a tile seen
    in under 1% of the ground frames (a stray) is dropped."""
    band = frames[:, -config.rows :].astype(np.float32)
    repeats = np.abs(band[:, :, config.period :] - band[:, :, : -config.period]).mean(axis=(1, 2, 3)) <= config.tolerance
    tiles: list[np.ndarray] = []
    counts: list[int] = []
    for tile in band[repeats, :, : config.period]:
        for index, known in enumerate(tiles):
            if min(np.abs(np.roll(tile, shift, axis=1) - known).mean() for shift in range(config.period)) <= config.tolerance:
                counts[index] += 1
                break
        else:
            tiles.append(tile)
            counts.append(1)
    order = [i for i in np.argsort(counts)[::-1] if counts[i] >= 0.01 * max(1, int(repeats.sum()))]
    if not order:
        raise WorldsimError(f"no frame's bottom {config.rows} rows repeat every {config.period} columns: these frames show no tiled ground")
    statistics = {"frames": len(frames), "ground_fraction": float(repeats.mean()), "frames_per_tile": [counts[i] for i in order]}
    return np.stack([tiles[i] for i in order]).round().astype(np.uint8), statistics


class GroundTileReward(nn.Module):
    """Minus the distance (levels of 255) of ``next_frame``'s bottom band from the nearest real tile band."""

    name = "ground"
    history_frames = 1  # reads only the generated frame

    def __init__(self, tiles: torch.Tensor, config: GroundTilesConfig):
        """``tiles float[P, C, rows, period]`` in ``[-1, 1]``."""
        super().__init__()
        if tiles.dim() != 4 or tiles.shape[-2:] != (config.rows, config.period):
            raise WorldsimError(f"ground tiles must be float[P, C, {config.rows}, {config.period}], got {tuple(tiles.shape)}")
        self.config = config
        self.register_buffer("tiles", tiles)

    def bands(self, width: int) -> torch.Tensor:
        """Every tile at every shift, repeated across ``width`` columns: ``float[P * period, C, rows, width]``."""
        repeats = -(-width // self.config.period)
        shifted = torch.stack([self.tiles.roll(shift, dims=-1) for shift in range(self.config.period)], dim=1).flatten(0, 1)
        return shifted.repeat(1, 1, 1, repeats)[..., :width]

    def _band_distances(self, frames: torch.Tensor) -> torch.Tensor:
        """``float[B, C, H, W]`` -> ``float[B, P * period]``: the capped distance (levels of 255) to each tile band."""
        band = frames[..., -self.config.rows :, :]
        width = band.shape[-1]
        if width % self.config.period:
            raise WorldsimError(f"the ground reward needs a frame width that is a multiple of {self.config.period}, got {width}")
        difference = (band[:, None] - self.bands(width)[None]).abs() * LEVELS  # [B, P * period, C, rows, W]
        groups = difference.unflatten(-1, (width // self.config.period, self.config.period)).mean(dim=(2, 3, 5))  # [B, K, groups]
        return groups.clamp(max=self.config.cap).mean(dim=-1)

    def distances(self, frames: torch.Tensor) -> torch.Tensor:
        """``float[B, C, H, W]`` -> ``float[B]``: the capped distance (levels of 255) to the nearest tile band."""
        return self._band_distances(frames).min(dim=1).values

    def nearest_ground(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` with their bottom band replaced by the nearest tile band: what the reward's 0 looks like."""
        nearest = self.bands(frames.shape[-1])[self._band_distances(frames).argmin(dim=1)]
        return torch.cat([frames[..., : -self.config.rows, :], nearest.to(frames.dtype)], dim=-2)

    def score(self, transition: Transition) -> Scores:
        distance = self.distances(transition.next_frame)
        return Scores(-distance, torch.ones_like(distance, dtype=torch.bool))


def save_ground_tiles(path: str | os.PathLike, tiles: np.ndarray, config: GroundTilesConfig, provenance: dict, card: str) -> None:
    """Write a ground-tiles checkpoint folder (``tiles uint8[P, rows, period, C]``), atomically."""
    weights = {"tiles": torch.from_numpy(np.ascontiguousarray(tiles))}  # uint8[P, rows, period, C], as frames are stored
    save_checkpoint(path, weights, {"kind": GROUND_TILES, "ground": asdict(config), **provenance}, files={"README.md": card})


def load_ground_reward(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> GroundTileReward:
    """The ground reward with the tiles at ``path`` (a folder ``save_ground_tiles`` wrote), or the shipped ones."""
    checkpoint = load_checkpoint(path or shipped_checkpoint(SHIPPED_TILES))
    require_kind(checkpoint.config, GROUND_TILES, checkpoint.path)
    config = from_dict(GroundTilesConfig, checkpoint.config.get("ground"), where="ground")
    tiles = from_uint8(checkpoint.weights["tiles"])  # uint8[P, rows, period, C] -> float[P, C, rows, period] in [-1, 1]
    return GroundTileReward(tiles, config).to(device).requires_grad_(False)
