#!/usr/bin/env bash
# Trains the shipped Cooperative Pong world model (worldsim/checkpoints/coop-pong-v3) from our own
# agents' data. Every step resumes: re-running the script skips what is done and continues the rest.
#   scripts/train_world_model_coop_pong.sh [extra `worldsim train` overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/wm-coop-pong-v3
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# 1. Training data: the scripted pair (each paddle takes a random action 45% of the time: every
#    joint action in many places, rallies of ~350 steps ending in misses) and random play.
have worldsim/coop-pong-mix-v1 || worldsim collect --env coop-pong --agent scripted-pong:0.8,random:0.2 --steps 60000 --seed 0 --quiet \
  --dataset-id worldsim/coop-pong-mix-v1

# 2. Held-out episodes from a policy the model never sees in training: the scripted pair with
#    more noise (0.6), on other seeds.
have worldsim/coop-pong-heldout-v1 || worldsim collect --env coop-pong --agent scripted-pong --steps 4000 --seed 90000 --quiet \
  --dataset-id worldsim/coop-pong-heldout-v1 scripted-pong.noise=0.6

# 3. The end model and the denoiser do not depend on each other: one thread each, side by side.
export OMP_NUM_THREADS=1
worldsim train --model coop-pong --train coop-pong --out "$OUT" --quiet train.threads=1 "train.phases=[end_model]" "$@" & end_model=$!
worldsim train --model coop-pong --train coop-pong --out "$OUT" --quiet train.threads=1 "train.phases=[denoiser]" "$@" & denoiser=$!
wait $end_model && wait $denoiser

# 4. The end classifier learns from the trained denoiser's frames; then model/ is written.
worldsim train --model coop-pong --train coop-pong --out "$OUT" --quiet train.threads=1 "$@"
