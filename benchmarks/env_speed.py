"""How fast are the real envs with worldsim's preprocessing, and how fast does collection into Minari go?

For each env (Mario World 1-1; PointMaze UMaze/Medium/Large):

* env steps/s: random actions drawn before timing, through ``gym.make`` (the wrappers users get),
  resets included; the median of ``--runs`` timed runs of ``--steps`` steps;
* for Mario, also the bare emulator (gym-super-mario-bros, 240x256, no frame skip) in frames/s,
  so the cost of the preprocessing shows: one worldsim step is 4 emulator frames;
* collection throughput: ``worldsim.data.collect.collect_dataset`` end to end (agent, env, Minari
  writes, the final rename), with the env's data agent (Mario: scripted; PointMaze: waypoint
  expert with action noise 0.5), in steps/s, against the same agent and env without Minari.

Prints a markdown table. Usage::

    python benchmarks/env_speed.py [--runs 5] [--steps 2000] [--collect-steps 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import gymnasium as gym
import numpy as np
from gym_super_mario_bros import SuperMarioBrosEnv
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from nes_py.wrappers import JoypadSpace
from tqdm import tqdm
from worldsim.agents import make_agent

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.eval.collect import AgentShare, collect_dataset

ENVS = {
    # name: (env id, gym.make kwargs, data agent, agent options)
    "mario": ("worldsim/MarioReal-v0", {"noop_max": 30}, "scripted", {}),
    "pointmaze-umaze": ("worldsim/PointMaze-UMaze-v0", {"reset_target": True}, "waypoint", {"action_noise": 0.5}),
    "pointmaze-medium": ("worldsim/PointMaze-Medium-v0", {"reset_target": True}, "waypoint", {"action_noise": 0.5}),
    "pointmaze-large": ("worldsim/PointMaze-Large-v0", {"reset_target": True}, "waypoint", {"action_noise": 0.5}),
}


def timed_runs(step_fn, reset_fn, actions, runs: int, desc: str) -> float:
    """Median steps/s over ``runs`` runs of ``len(actions)`` steps."""
    rates = []
    for run in tqdm(range(runs), desc=desc, unit="run", leave=False):
        reset_fn(run)
        start = time.perf_counter()
        for action in actions:
            if step_fn(action):
                reset_fn(None)
        rates.append(len(actions) / (time.perf_counter() - start))
    return statistics.median(rates)


def env_steps_per_second(env: gym.Env, steps: int, runs: int, desc: str) -> float:
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]

    def step(action) -> bool:
        _, _, terminated, truncated, _ = env.step(action)
        return terminated or truncated

    return timed_runs(step, lambda seed: env.reset(seed=seed), actions, runs, desc)


def emulator_frames_per_second(steps: int, runs: int) -> float:
    nes = JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), SIMPLE_MOVEMENT)
    actions = np.random.default_rng(0).integers(len(SIMPLE_MOVEMENT), size=steps).tolist()

    def step(action) -> bool:
        _, _, terminated, truncated, _ = nes.step(action)
        return terminated or truncated

    rate = timed_runs(step, lambda seed: nes.reset(), actions, runs, "emulator")
    nes.close()
    return rate


def agent_loop_steps_per_second(env: gym.Env, agent, steps: int) -> float:
    """The collection loop without Minari: same agent, same seeding."""
    done, episode = 0, 0
    start = time.perf_counter()
    while done < steps:
        observation, info = env.reset(seed=episode)
        agent.reset(seed=episode)
        ended = False
        while done < steps and not ended:
            observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
            done += 1
            ended = terminated or truncated
        episode += 1
    return steps / (time.perf_counter() - start)


def collect_steps_per_second(name: str, env: gym.Env, agent, steps: int) -> float:
    with tempfile.TemporaryDirectory() as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        start = time.perf_counter()
        collect_dataset(env, [AgentShare(name, agent, 1.0)], steps, f"bench/{name}-v0", progress=False)
        return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed env run")
    parser.add_argument("--collect-steps", type=int, default=3000, help="steps collected into Minari per env")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    args = parser.parse_args(argv)

    rows = []
    for name in args.envs:
        env_id, kwargs, agent_name, agent_options = ENVS[name]
        env = gym.make(env_id, **kwargs)
        env_rate = env_steps_per_second(env, args.steps, args.runs, name)
        agent = make_agent(agent_name, env, **agent_options)
        loop_rate = agent_loop_steps_per_second(env, agent, args.collect_steps)
        collect_rate = collect_steps_per_second(name, env, agent, args.collect_steps)
        rows.append((name, env_rate, agent_name, loop_rate, collect_rate))
        env.close()
    emulator = emulator_frames_per_second(args.steps, args.runs) if "mario" in args.envs else None

    print(f"\nReal env speed (median of {args.runs} runs of {args.steps} random-action steps) and collection into Minari ({args.collect_steps} steps)\n")
    print("| env | env steps/s | data agent | agent + env steps/s | collect into Minari steps/s | Minari overhead |")
    print("|---|---:|---|---:|---:|---:|")
    for name, env_rate, agent_name, loop_rate, collect_rate in rows:
        print(f"| {name} | {env_rate:,.0f} | {agent_name} | {loop_rate:,.0f} | {collect_rate:,.0f} | {loop_rate / collect_rate:.2f}x |")
    if emulator is not None:
        print(f"\nBare emulator (240x256, no frame skip): {emulator:,.0f} frames/s = {emulator / 4:,.0f} frame-skip-4 steps/s before preprocessing.")


if __name__ == "__main__":
    main()
