#!/usr/bin/env bash
# The remembering dream against frame stacking in MiniWorld's room (issue 12): data from our own
# explorer, then three world models trained to the same CPU minutes (one thread each): frame
# stacking, the S6 memory, and the memory with a view bank recalled by place; then the return
# test. Run it again with more minutes to go on (a ladder: 90, 180, 360, 600); every step resumes.
#   scripts/train_world_model_room.sh [CPU minutes per model, default 90]
# MiniWorld is installed apart: pip install --no-deps miniworld==2.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
minutes=${1:-90}
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# 1. Training data: the explorer walks and, half the time, looks away and straight back (1-12 turns).
have worldsim/room-explore-v0 || worldsim collect --env miniworld-room --agent room-explorer --steps 100000 --seed 0 --quiet \
  --dataset-id worldsim/room-explore-v0
# 2. Held-out rooms (other seeds).
have worldsim/room-heldout-v0 || worldsim collect --env miniworld-room --agent room-explorer --steps 5000 --seed 100000 --quiet \
  --dataset-id worldsim/room-heldout-v0

# 3. Frame stacking (batch 32, unroll 2); the memory models read 8 windows of 32 frames and denoise
#    4 frames of each: 32 denoised frames per step too. The plain S6 memory, and the remembering
#    dream: the memory with a view bank, its top-1 recall trained directly and scored by a place
#    integrated from the actions (room-memory-places.yaml).
worldsim train --model room --train room --out runs/wm-room --quiet train.denoiser.max_cpu_minutes="$minutes" &
worldsim train --model room-memory --train room --out runs/wm-room-memory --quiet train.denoiser.max_cpu_minutes="$minutes" \
  train.denoiser.batch_size=8 &
worldsim train --model room-memory-places --train room --out runs/wm-room-memory-places --quiet train.denoiser.max_cpu_minutes="$minutes" \
  train.denoiser.batch_size=8 train.denoiser.memory_return_targets=0.5 train.denoiser.memory_view_match=true \
  +train.denoiser.loss_weights.memory_views=0.1 &
wait

# 4. The return test: 12 turns left, 12 right (and 6 and 6), 32 held-out rooms.
models=(--checkpoint frame-stack=runs/wm-room/model --checkpoint memory=runs/wm-room-memory/model --checkpoint memory+places=runs/wm-room-memory-places/model)
mkdir -p runs/room
python benchmarks/memory_return.py "${models[@]}" --episodes 32 --turns 12 --threads 2 --strip "runs/room/return_$minutes.png" \
  --json "runs/room/memory_return_$minutes.json"
python benchmarks/memory_return.py "${models[@]}" --episodes 32 --turns 6 --threads 2
# ... and with the dream watching the real way out, each memory beside its ablation (another room's past).
python benchmarks/memory_return.py "${models[@]}" --episodes 32 --turns 12 --threads 2 --observe way-out \
  --strip "runs/room/wayout_$minutes.png" --json "runs/room/wayout_$minutes.json"
