#!/usr/bin/env bash
# Trains the shipped Mario world model (worldsim/checkpoints/mario-v0) from our own agents' data.
# Re-running the script resumes every step that was already done.
set -euo pipefail
DQN=${DQN:-runs/dqn-mario/best.zip}  # trained by scripts/train_dqn_mario.sh

# 1. Data: the scripted runner (80%, balanced exploration) with random play (20%), DQN with random
#    play, and a held-out set from other seeds for the fidelity curve.
worldsim collect --env mario --agent scripted:0.8,random:0.2 --steps 100000 --seed 0 \
  --dataset-id worldsim/mario-scripted-random-v0 scripted.balance_actions=true
worldsim collect --env mario --agent dqn:0.8,random:0.2 --steps 30000 --seed 10000 \
  --dataset-id worldsim/mario-dqn-random-v0 dqn.path="$DQN" dqn.epsilon=0.1
worldsim collect --env mario --agent scripted:0.4,dqn:0.4,random:0.2 --steps 6000 --seed 90000 \
  --dataset-id worldsim/mario-heldout-v0 dqn.path="$DQN"

# 2. The world model (denoiser + transition heads), 2 CPU threads.
worldsim train --model mario --train mario --out runs/wm-mario --quiet train.threads=2 "$@"
