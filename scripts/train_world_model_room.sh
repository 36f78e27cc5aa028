#!/usr/bin/env bash
# The remembering dream against frame stacking, in MiniWorld's room (issue 12): data from our own
# explorer, then the two world models trained side by side for the same CPU time (one thread each),
# then the return test. Every step resumes: re-running the script continues what is not done.
#   scripts/train_world_model_room.sh [CPU minutes per model, default 50]
# MiniWorld is installed apart: pip install --no-deps miniworld==2.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
minutes=${1:-50}
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# 1. Training data: the explorer walks and, half the time, looks away and straight back (1-12 turns).
have worldsim/room-explore-v0 || worldsim collect --env miniworld-room --agent room-explorer --steps 100000 --seed 0 --quiet \
  --dataset-id worldsim/room-explore-v0
# 2. Held-out rooms (other seeds).
have worldsim/room-heldout-v0 || worldsim collect --env miniworld-room --agent room-explorer --steps 5000 --seed 100000 --quiet \
  --dataset-id worldsim/room-heldout-v0

# 3. Frame stacking (batch 32, unroll 2) and the same model with a memory (8 windows of 32 frames,
#    4 frames denoised each: 32 denoised frames per step too), the same CPU minutes each.
worldsim train --model room --train room --out runs/wm-room --quiet train.denoiser.max_cpu_minutes="$minutes" &
worldsim train --model room-memory --train room --out runs/wm-room-memory --quiet train.denoiser.max_cpu_minutes="$minutes" \
  train.denoiser.batch_size=8 &
wait

# 4. The return test: 12 turns left, 12 right, 32 held-out rooms.
python benchmarks/memory_return.py --checkpoint frame-stack=runs/wm-room/model --checkpoint memory=runs/wm-room-memory/model \
  --episodes 32 --turns 12 --threads 2 --strip docs/room_return.png --json runs/memory_return.json
