"""Dream to real: a DQN trained only in the dream, then played in the real game.

This is the test that the dream is an environment and not a video (DIAMOND's protocol):

1. a DQN (the shipped defaults, SB3) learns for ``--steps`` env steps in ``worldsim/Mario-v0`` only,
   ``--num-envs`` dreams batched in one forward pass (``DreamSB3VecEnv``), one gradient step per 4
   env steps as in the real-game recipe; checkpointed atomically every 10 minutes and resumed by
   running the same command again;
2. it plays ``--episodes`` held-out episodes of the real game (``worldsim/MarioReal-v0``, the
   ``mario`` config, seeds 20000+: neither run chose anything on them), greedy with epsilon 0.05;
3. beside it on the same seeds: random play, the scripted runner, and the same DQN trained on the
   real game for the same number of steps (``--real-agent``: the final ``agent.zip`` of a
   ``worldsim learn`` run, not its ``best.zip``, which was selected on evaluations).

Prints a markdown table (median x_pos; the ratios the targets use) and writes ``OUT/results.json``::

    python benchmarks/dream_to_real.py --steps 100000 --real-agent runs/dqn-mario/agent.zip --out runs/dream-to-real
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from worldsim.agents import make_agent
from worldsim.agents.dqn import DQN_DEFAULTS, DQNAgent
from worldsim.agents.dqn_vec import VecAgentPreprocessing
from worldsim.envs import make_env
from worldsim.envs.dream_sb3 import DreamSB3VecEnv

from worldsim.eval.episodes import evaluate_agent

HELD_OUT_SEED = 20_000


class _AtomicCheckpoint(BaseCallback):
    """Saves the model atomically every ``minutes`` of wall time (a killed run loses at most that)."""

    def __init__(self, path: Path, minutes: float):
        super().__init__()
        self.path, self.seconds, self.last = path, 60 * minutes, time.perf_counter()

    def _on_step(self) -> bool:
        if time.perf_counter() - self.last > self.seconds:
            save(self.model, self.path)
            self.last = time.perf_counter()
        return True


def save(model: DQN, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def train_in_dream(out: Path, steps: int, num_envs: int, checkpoint: str | None, seed: int) -> Path:
    path = out / "dream_dqn.zip"
    venv = VecAgentPreprocessing(DreamSB3VecEnv(num_envs, checkpoint=checkpoint, seed=seed))
    # One gradient step per 4 env steps, as the real recipe (train_freq 4, n_envs 1) does.
    hyperparameters = {**DQN_DEFAULTS, "train_freq": 1, "gradient_steps": max(num_envs // 4, 1)}
    if path.is_file():
        model = DQN.load(path, env=venv)
        print(f"resuming {path} at step {model.num_timesteps}")
    else:
        model = DQN("CnnPolicy", venv, seed=seed, verbose=0, **hyperparameters)
    remaining = steps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=_AtomicCheckpoint(path, 10.0), reset_num_timesteps=False, progress_bar=True)
        save(model, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps of DQN training in the dream")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--checkpoint", default=None, help="world model folder (default: the shipped one)")
    parser.add_argument("--real-agent", type=Path, required=True, help="agent.zip of a DQN trained on the real game for --steps steps")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/dream-to-real"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    dream_path = train_in_dream(args.out, args.steps, args.num_envs, args.checkpoint, args.seed)
    train_hours = (time.perf_counter() - started) / 3600
    env = make_env("mario")
    agents = {
        "random": make_agent("random", env),
        "scripted": make_agent("scripted", env),
        f"DQN, {args.steps} steps in the real game": DQNAgent.load(args.real_agent, env=env, epsilon=0.05),
        f"DQN, {args.steps} steps in the dream only": DQNAgent.load(dream_path, env=env, epsilon=0.05),
    }
    results = {name: evaluate_agent(env, agent, episodes=args.episodes, first_seed=HELD_OUT_SEED) for name, agent in agents.items()}
    medians = {name: r["x_pos_median"] for name, r in results.items()}
    dream_name, real_name = list(agents)[3], list(agents)[2]
    summary = {
        "dream_over_random": medians[dream_name] / medians["random"],
        "dream_over_real_dqn": medians[dream_name] / medians[real_name],
        "dream_training_hours_this_run": train_hours,
    }
    print(f"\nReal game, {args.episodes} held-out episodes (seeds {HELD_OUT_SEED}+), median x_pos:\n")
    print("| agent | median x_pos | max x_pos | flags |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['x_pos_median']:.0f} | {r['x_pos_max']:.0f} | {r['flag_rate']:.0%} |")
    print(f"\ndream DQN / random: {summary['dream_over_random']:.2f}x; dream DQN / real DQN: {summary['dream_over_real_dqn']:.0%}")
    tmp = args.out / ".results.json.tmp"
    tmp.write_text(json.dumps({"results": results, "summary": summary, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    tmp.replace(args.out / "results.json")


if __name__ == "__main__":
    main()
