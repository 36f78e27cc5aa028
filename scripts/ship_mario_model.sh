#!/usr/bin/env bash
# Ships a trained Mario world model inside the package and measures it.
#   scripts/ship_mario_model.sh [RUN]   (RUN defaults to runs/wm-mario, written by train_world_model_mario.sh)
# Copies RUN/model (EMA weights, config.json, start_states.npz, the trainer's model card) to
# worldsim/checkpoints/mario-v0, then writes RUN/fidelity.json (held-out fidelity) and prints the
# speed table; the model card's metrics section is written from these two outputs.
set -euo pipefail
RUN=${1:-runs/wm-mario}
DEST=worldsim/checkpoints/mario-v0
test -f "$RUN/model/model.safetensors" || { echo "no finished model in $RUN/model: run scripts/train_world_model_mario.sh first" >&2; exit 2; }
rm -rf "$DEST.tmp" && cp -r "$RUN/model" "$DEST.tmp"
# The denoiser's held-out curve: the run's, or (a run that kept the shipped denoiser, train.base_model) the shipped one's.
if [ -f "$RUN/curve.csv" ]; then cp "$RUN/curve.csv" "$DEST.tmp/fidelity_curve.csv"; elif [ -f "$DEST/fidelity_curve.csv" ]; then cp "$DEST/fidelity_curve.csv" "$DEST.tmp/"; fi
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
worldsim eval --checkpoint "$DEST" --dataset worldsim/mario-heldout-v0 --json "$RUN/fidelity.json" --quiet
python benchmarks/dream_speed.py --threads 2 --checkpoint "$DEST"
