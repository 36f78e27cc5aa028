"""Estimate a game's ground tiles from real frames and write them as a checkpoint folder (the ground reward's).

    python scripts/estimate_ground_tiles.py --dataset worldsim/mario-explore-v0 --out worldsim/checkpoints/ground-mario-v0

Reads every ``--every``-th frame of every episode of the Minari dataset (the observations as the
env emits them, uint8[H, W, C]), finds the frames whose bottom band repeats every ``period`` columns,
and keeps the distinct tiles (``worldsim.rewards.ground.estimate_ground_tiles``). The folder gets a
card with this command and the counts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import minari
import numpy as np

from worldsim.rewards.ground import GroundTilesConfig, estimate_ground_tiles, save_ground_tiles

CARD = """# {name}: the ground tiles of Super Mario Bros at {height}x{width}

The ground reward's tiles (`worldsim.rewards.ground`, `worldsim align --reward ground`): no network,
{tiles} tiles of {rows} rows x {period} columns (the area-downscaled 16-pixel NES ground block at its
sub-pixel phases), estimated from real frames.

- Command: `{command}`
- Data: `{dataset}`, one frame in {every} of each episode: {frames} frames.
- Ground: {ground:.1%} of them have a bottom band that repeats every {period} columns to within
  {tolerance} level(s) of 255 (the rest show a pit, a pipe or Mario's feet there).
- Frames showing each tile: {per_tile}.
- Settings: {settings}.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="worldsim/mario-explore-v0", help="a Minari dataset of the real game's frames")
    parser.add_argument("--out", required=True, help="the checkpoint folder to write")
    parser.add_argument("--every", type=int, default=3, help="read every N-th frame of an episode")
    parser.add_argument("--rows", type=int, default=GroundTilesConfig.rows)
    parser.add_argument("--period", type=int, default=GroundTilesConfig.period)
    parser.add_argument("--cap", type=float, default=GroundTilesConfig.cap)
    args = parser.parse_args(argv)
    config = GroundTilesConfig(rows=args.rows, period=args.period, cap=args.cap)
    dataset = minari.load_dataset(args.dataset)
    frames = np.concatenate([np.asarray(episode.observations)[:: args.every] for episode in dataset.iterate_episodes()])
    tiles, statistics = estimate_ground_tiles(frames, config)
    command = "python scripts/estimate_ground_tiles.py " + " ".join(sys.argv[1:] if argv is None else argv)
    card = CARD.format(
        name=args.out.rstrip("/").split("/")[-1],
        height=frames.shape[1],
        width=frames.shape[2],
        tiles=len(tiles),
        rows=config.rows,
        period=config.period,
        command=command,
        dataset=args.dataset,
        every=args.every,
        frames=statistics["frames"],
        ground=statistics["ground_fraction"],
        tolerance=config.tolerance,
        per_tile=", ".join(str(count) for count in statistics["frames_per_tile"]),
        settings=asdict(config),
    )
    save_ground_tiles(args.out, tiles, config, {"dataset": args.dataset, "command": command, "statistics": statistics}, card)
    print(f"{args.out}: {len(tiles)} tiles from {statistics['frames']} frames ({statistics['ground_fraction']:.1%} show tiled ground)")


if __name__ == "__main__":
    main()
