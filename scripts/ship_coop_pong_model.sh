#!/usr/bin/env bash
# Ships a trained Cooperative Pong world model inside the package and measures it.
#   scripts/ship_coop_pong_model.sh [RUN]   (RUN defaults to runs/wm-coop-pong-v3, written by train_world_model_coop_pong.sh)
# Copies RUN/model (EMA weights, config.json, start_states.npz, the trainer's model card) to
# worldsim/checkpoints/coop-pong-v3, then measures it: RUN/fidelity.json (held-out fidelity with a
# delta-PSNR per paddle), the speed table, RUN/rally.json (the scripted pair's rallies, 64 a side in
# the dream and the real game) and the ball table; the model card's metrics come from these.
set -euo pipefail
RUN=${1:-runs/wm-coop-pong-v3}
DEST=worldsim/checkpoints/coop-pong-v3
test -f "$RUN/model/model.safetensors" || { echo "no finished model in $RUN/model: run scripts/train_world_model_coop_pong.sh first" >&2; exit 2; }
rm -rf "$DEST.tmp" && cp -r "$RUN/model" "$DEST.tmp" && rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
cp "$RUN/curve.csv" "$DEST/fidelity_curve.csv"
worldsim eval --checkpoint "$DEST" --dataset worldsim/coop-pong-heldout-v1 --horizon 16 --rollouts 128 --agent-episodes 0 --json "$RUN/fidelity.json" --quiet
python benchmarks/dream_speed.py --env worldsim/CoopPong-dream-v0 --threads 2 --batches 1 16 64
python benchmarks/pong_rally.py --checkpoint shipped="$DEST" --episodes 64 --threads 2 --json "$RUN/rally.json"
python benchmarks/pong_ball_persistence.py --checkpoint shipped="$DEST" --episodes 64 --steps 100 --threads 2
