#!/usr/bin/env bash
# Trains the shipped diffusion-forcing maze planners (worldsim/checkpoints/df-{umaze,medium,large}-v0)
# from our own waypoint expert's data, then ships them into the package.
#   scripts/train_maze_planners.sh [MAZE ...]   (default: umaze medium large)
# Re-running the script resumes every step that was already done (a dataset that exists is not collected again,
# training resumes from runs/df-MAZE/checkpoint).
set -euo pipefail
MAZES=${*:-umaze medium large}

for MAZE in $MAZES; do
  # 1. Data: the waypoint expert with action noise, a new random goal on arrival (D4RL's recipe), 1M steps.
  if ! worldsim dataset "worldsim/pointmaze-$MAZE-waypoint-v0" > /dev/null 2>&1; then
    worldsim collect --env "pointmaze-$MAZE" --agent waypoint --steps 1000000 --quiet
  fi
  # 2. The planner (configs/train/df-MAZE.yaml: 10k steps for UMaze, 30k for Medium and Large),
  #    on one CPU thread: the transformer is small, more threads barely help.
  worldsim train --model "df-$MAZE" --train "df-$MAZE" --out "runs/df-$MAZE" --quiet train.threads=1
  # 3. Ship it: the trained EMA weights and the trainer's model card, replaced atomically.
  DEST="worldsim/checkpoints/df-$MAZE-v0"
  rm -rf "$DEST.tmp" && cp -r "runs/df-$MAZE/model" "$DEST.tmp" && rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
done
