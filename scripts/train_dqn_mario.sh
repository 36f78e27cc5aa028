#!/usr/bin/env bash
# Train the DQN Mario agent behind BENCHMARKS.md, then measure it against random and scripted play.
# CPU budget: one torch thread, 100k env steps (about 45 min on one core of a 2-core machine).
# Killed midway? Run it again: `worldsim learn` resumes from runs/dqn-mario/agent.zip.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/worldsim learn --env mario --agent dqn --steps 100000 --out runs/dqn-mario --eval-every 20000
.venv/bin/python benchmarks/dqn_mario.py --run runs/dqn-mario --threads 1
