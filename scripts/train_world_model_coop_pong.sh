#!/usr/bin/env bash
# Trains the shipped Cooperative Pong world model (worldsim/checkpoints/coop-pong-v0) from our own
# agents' data. Every step resumes: re-running the script skips what is done and continues the rest.
#   scripts/train_world_model_coop_pong.sh [extra `worldsim train` overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# The shipped model's data were collected before the env drew a miss as the field without the ball
# (hide_ball_out, now on by default): env.kwargs.hide_ball_out=false collects them again unchanged.
# 1. Training data: the scripted pair (each paddle takes a random action 45% of the time: every
#    joint action in many places, rallies of ~350 steps ending in misses) and random play.
have worldsim/coop-pong-mix-v0 || worldsim collect --env coop-pong --agent scripted-pong:0.8,random:0.2 --steps 60000 --seed 0 --quiet \
  --dataset-id worldsim/coop-pong-mix-v0 env.kwargs.hide_ball_out=false

# 2. Held-out episodes from a policy the model never sees in training: the scripted pair with
#    more noise (0.6), on other seeds.
have worldsim/coop-pong-heldout-v0 || worldsim collect --env coop-pong --agent scripted-pong --steps 4000 --seed 90000 --quiet \
  --dataset-id worldsim/coop-pong-heldout-v0 scripted-pong.noise=0.6 env.kwargs.hide_ball_out=false

# 3. The world model: the end model and the denoiser (two phases of one loop, each resumable).
worldsim train --model coop-pong --train coop-pong --out runs/wm-coop-pong --quiet "$@"
