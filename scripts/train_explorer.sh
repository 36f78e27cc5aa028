#!/usr/bin/env bash
# GenEx's explorer in MiniWorld's four rooms (issue "Panoramic exploration"): panoramic walks from our
# own explorer agent, the two training stages (and the second again with the spherical-consistency
# loss, to measure it), then the imagination benchmark in the real simulator. Every step resumes.
#   scripts/train_explorer.sh [CPU minutes per stage, default 40: the shipped explorer-v0]
# MiniWorld is installed apart: pip install --no-deps miniworld==2.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
minutes=${1:-40}
have() { worldsim dataset "$1" > /dev/null 2>&1; }

# 1. Panoramic walks: the room explorer (it looks away and back; turns are rolls the model never
#    learns), and the same explorer walking straight for longer (the walks the model does learn).
have worldsim/panorama-explore-v0 || worldsim collect --env miniworld-panorama --agent room-explorer --steps 50000 --seed 0 --quiet \
  --dataset-id worldsim/panorama-explore-v0
have worldsim/panorama-walks-v0 || worldsim collect --env miniworld-panorama --agent room-explorer --steps 50000 --seed 50000 --quiet \
  --dataset-id worldsim/panorama-walks-v0 room-explorer.look_back=0.1 room-explorer.max_hold=12

data="train.datasets=[worldsim/panorama-explore-v0,worldsim/panorama-walks-v0]"
# 2. The image layers on one-frame clips.
worldsim train --model explorer --train explorer-spatial --out runs/explorer-spatial --quiet "$data" train.max_cpu_minutes="$minutes"
# 3. Only the temporal transformer blocks, on 4-frame walks; without and with the spherical-consistency loss.
worldsim train --model explorer --train explorer-temporal --out runs/explorer-temporal --quiet "$data" \
  train.base=runs/explorer-spatial/model train.max_cpu_minutes="$minutes"
worldsim train --model explorer --train explorer-temporal --out runs/explorer-temporal-spherical --quiet "$data" \
  train.base=runs/explorer-spatial/model train.max_cpu_minutes="$minutes" model.noise.spherical_weight=0.5
# 4. Both against the real simulator (forward 1/4/8, the loop, yaw equivariance, speed), then: does imagining help?
#    The red-box seeker with and without the explorer, in the real four rooms.
for run in explorer-temporal explorer-temporal-spherical; do
  python benchmarks/explorer_fidelity.py --explorer runs/$run/model --episodes 32 --threads "$OMP_NUM_THREADS" \
    --strip runs/$run/fidelity.png --json runs/$run/fidelity.json | tee runs/$run/fidelity.txt
done
python benchmarks/explorer_imagination.py --explorer runs/explorer-temporal/model --episodes 50 --threads "$OMP_NUM_THREADS" \
  --json runs/explorer_imagination.json | tee runs/explorer_imagination.txt
