#!/usr/bin/env bash
# Ships a trained Cooperative Pong world model inside the package and measures it.
#   scripts/ship_coop_pong_model.sh [RUN]   (RUN defaults to runs/wm-coop-pong, written by train_world_model_coop_pong.sh)
# Copies RUN/model (EMA weights, config.json, start_states.npz, the trainer's model card) to
# worldsim/checkpoints/coop-pong-v0, then writes RUN/fidelity.json (held-out fidelity with a
# delta-PSNR per paddle, and the scripted pair's rallies in the dream and the real game) and prints
# the speed table; the model card's metrics section is written from these two outputs.
set -euo pipefail
RUN=${1:-runs/wm-coop-pong}
DEST=worldsim/checkpoints/coop-pong-v0
test -f "$RUN/model/model.safetensors" || { echo "no finished model in $RUN/model: run scripts/train_world_model_coop_pong.sh first" >&2; exit 2; }
rm -rf "$DEST.tmp" && cp -r "$RUN/model" "$DEST.tmp" && rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
cp "$RUN/curve.csv" "$DEST/fidelity_curve.csv"
worldsim eval --checkpoint "$DEST" --dataset worldsim/coop-pong-heldout-v0 --horizon 16 --agent-episodes 20 --json "$RUN/fidelity.json" --quiet
python benchmarks/dream_speed.py --env worldsim/CoopPong-dream-v0 --threads 2 --batches 1 16 64
