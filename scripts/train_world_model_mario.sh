#!/usr/bin/env bash
# Trains the shipped Mario world model (worldsim/checkpoints/mario-v0) from our own agents' data.
# Every step resumes: re-running the script skips what is done and continues what was interrupted.
#   scripts/train_world_model_mario.sh [extra `worldsim train` overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# 1. Training data: the scripted runner exploring (15% of its steps start an exploratory action,
#    least-used first, held for 1-6 steps: stops, back-runs, jumps in place) and random play.
have worldsim/mario-explore-v0 || worldsim collect --env mario --agent scripted:0.8,random:0.2 --steps 150000 --seed 0 --quiet \
  --dataset-id worldsim/mario-explore-v0 scripted.balance_actions=true scripted.epsilon=0.15 scripted.hold_steps=6

# 2. Held-out episodes from a policy the model never sees in training: the DQN agent
#    (scripts/train_dqn_mario.sh trains it on the real game; 100k steps).
test -f runs/dqn-mario/best.zip || scripts/train_dqn_mario.sh
have worldsim/mario-heldout-v0 || worldsim collect --env mario --agent dqn --steps 6000 --seed 90000 --quiet \
  --dataset-id worldsim/mario-heldout-v0 dqn.path=runs/dqn-mario/best.zip dqn.epsilon=0.1

# 3. The inverse-dynamics probe (real transitions only) that `worldsim eval` scores dreams with.
worldsim train --model idm-mario --train idm-mario --out runs/idm-mario --quiet

# 4. The world model: the end model and the denoiser (two phases of one loop, each resumable).
worldsim train --model mario --train mario --out runs/wm-mario --quiet "$@"
