"""Does imagining help an agent? The red-box seeker in MiniWorld's four rooms, with and without the explorer.

Each agent plays the same held-out episodes of the real ``worldsim/MiniWorldPanorama-v0`` (reset
seeds ``seed ..``; 250 steps at most): random play, the seeker choosing blind where it sees no red,
and the seeker imagining a walk in each of four directions first (GenEx's imagination-augmented
policy), in four forms: going where it imagines red, else at random as blind (``red only``);
where no imagined walk shows red, the way its imagination shows open (the agent's default); at
random among the ways it shows open, ignoring imagined red (``no red``); and that, after imagined
red where none is in view now (``red unseen``).
Reported: success (the box reached: MiniWorld's termination) with its 95% Wilson interval, the
median steps of the successful episodes, the imagined walks per episode, and for each imagining
seeker against the blind one on the same seeds, the episodes only one of them won and the exact
two-sided McNemar p-value of that split.

The ceiling of imagination for this seeker (``--real-lookahead``): the same imagining seekers with
the real simulator in the explorer's place (each imagined walk is walked in a second copy of the
episode's rooms from the agent's true pose): an oracle, since it also shows what is out of sight
from here (the box past a doorway), which no explorer of the current panorama can know; and three
more rules with it: a random open way (blind's random choice without the walls) after the red,
the random open way alone, and after red only where none is in view now.

Also measured, the premise of the open way: does the explorer know walls? From the reset of each of
``--wall-starts`` seeds, in each quarter direction, the real distance 4 steps forward move the agent
against the mean change the explorer imagines over those 4 steps; reported as their correlation
and as how often a free walk (>= 1 m of the 2) is imagined changing more than a blocked one (AUROC).

Usage::

    python benchmarks/explorer_imagination.py --explorer runs/explorer-temporal/model --episodes 50 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent  # importing worldsim registers the envs
from worldsim.agents.panorama_seeker import PanoramaSeeker


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate."""
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: the chance of a split at least this uneven of the episodes only one agent won."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


class SimulatorWalks:
    """The real rooms in the explorer's place: ``reset``/``step`` as ``PanoramaEngine``'s, for four walks
    from ``pose`` (the agent's last info), each walked in a second copy of the episode's rooms."""

    def __init__(self, walk_steps: int = 4):
        self.sim = gym.make("worldsim/MiniWorldPanorama-v0")
        self.walks = np.zeros((4, walk_steps))  # the seeker reads the walk length from its shape
        self.pose: dict | None = None

    def seed(self, rng) -> None:  # nothing random to seed: the walks are the real ones
        pass

    def load(self, episode_seed: int) -> None:
        """The rooms of the episode reset with ``episode_seed`` (the same layout and box)."""
        self.sim.reset(seed=episode_seed)

    def reset(self, indices, rng, starts: np.ndarray) -> None:
        """Four walks from the agent's pose, a quarter turn left apart (``starts``: the rolled panoramas)."""
        world = self.sim.unwrapped._world
        heading = math.radians(self.pose["heading"])
        self._poses = [
            (np.array([self.pose["agent_x"], world.agent.pos[1], self.pose["agent_z"]]), heading + q * math.pi / 2)
            for q in range(len(starts))
        ]

    def step(self, actions: np.ndarray) -> np.ndarray:
        world, frames = self.sim.unwrapped._world, []
        for walk, action in enumerate(actions):
            world.agent.pos, world.agent.dir = self._poses[walk][0].copy(), self._poses[walk][1]
            world.step_count = 0  # never truncated
            frames.append(self.sim.step(int(action))[0])
            self._poses[walk] = (world.agent.pos.copy(), world.agent.dir)
        return np.stack(frames)


class RealLookaheadSeeker(PanoramaSeeker):
    """The imagining seeker with ``SimulatorWalks`` for its explorer: an oracle (it sees past walls)."""

    def __init__(self, env: gym.Env, open_ways: str, follow_red: str = "always"):
        super().__init__(env, open_ways=open_ways, follow_red=follow_red)
        self.engine = SimulatorWalks(self.walk_steps)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.engine.load(seed)

    def act(self, observation: np.ndarray, info: dict | None = None) -> int:
        self.engine.pose = info
        return super().act(observation, info)


def play(env: gym.Env, agent, seeds: range) -> dict:
    successes, steps, imagined = [], [], []
    for seed in seeds:
        observation, info = env.reset(seed=seed)
        agent.reset(seed=seed)
        for step in range(1, 10_000):
            observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
            if terminated or truncated:
                break
        successes.append(bool(terminated))
        steps.append(step)
        imagined.append(getattr(agent, "imagined", 0))
    won = [s for s, ok in zip(steps, successes, strict=True) if ok]
    low, high = wilson_interval(sum(successes), len(successes))
    return {
        "success": float(np.mean(successes)),
        "success_95": [low, high],
        "won": successes,
        "median_steps_to_box": float(np.median(won)) if won else float("nan"),
        "imagined_walks_per_episode": float(np.mean(imagined)),
    }


def wall_knowledge(explorer: str, seeds: range, sampling_steps: int) -> dict[str, float]:
    """The explorer's imagined change against the real distance walked, per start and quarter direction."""
    from worldsim.engine import resolve_device
    from worldsim.engine.panorama_engine import MOVE_FORWARD, TURN_LEFT, PanoramaEngine
    from worldsim.models.panorama_explorer import load_explorer

    device = resolve_device(None)
    model, starts = load_explorer(explorer, device)
    engine = PanoramaEngine(model, starts, num_walks=4, device=device, sampling_steps=sampling_steps)
    env = gym.make("worldsim/MiniWorldPanorama-v0")
    quarter = round(90.0 / model.config.turn_degrees)
    rng = np.random.default_rng(seeds.start)
    engine.seed(rng)
    distances, changes = [], []
    for seed in seeds:
        start, info = env.reset(seed=seed)
        for q in range(4):  # a quarter turn left, q times, then 4 steps forward
            env.reset(seed=seed)
            for _ in range(q * quarter):
                env.step(TURN_LEFT)
            for _ in range(4):
                after = env.step(MOVE_FORWARD)[-1]
            distances.append(np.hypot(after["agent_x"] - info["agent_x"], after["agent_z"] - info["agent_z"]))
        rolled = np.stack([np.roll(start, q * start.shape[1] // 4, axis=1) for q in range(4)])  # turning left rolls right
        engine.reset(np.arange(4), rng, rolled)
        for _ in range(4):
            imagined = engine.step(np.full(4, MOVE_FORWARD))
        changes.extend(np.abs(imagined.astype(np.int16) - rolled.astype(np.int16)).mean(axis=(1, 2, 3)))
    env.close()
    distances, changes = np.array(distances), np.array(changes)
    free = distances >= 1.0
    auroc = float((changes[free][:, None] > changes[~free][None, :]).mean()) if free.any() and (~free).any() else float("nan")
    return {
        "walks": len(distances),
        "blocked": int((~free).sum()),
        "correlation": float(np.corrcoef(distances, changes)[0, 1]),
        "auroc_free_over_blocked": auroc,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explorer", help="explorer checkpoint the imagining seeker uses (without it: random and blind only)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000, help="first reset seed (held out of training's 0..)")
    parser.add_argument(
        "--sampling-steps", type=int, default=4, help="the explorer's Euler steps per imagined walk (Explorer-v0's default)"
    )
    parser.add_argument("--real-lookahead", action="store_true", help="also the imagining seekers with the real rooms for imagination")
    parser.add_argument("--agents", nargs="+", help="play only these agents (and blind, the reference), by their printed names")
    parser.add_argument("--wall-starts", type=int, default=40, help="starts of the wall-knowledge check (0: skip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = gym.make("worldsim/MiniWorldPanorama-v0")
    seeds = range(args.seed, args.seed + args.episodes)
    # Each agent is built only if played: an imagining seeker loads the explorer, a real-lookahead one a second env.
    builders = {
        "random": lambda: make_agent("random", env),
        "seeker, blind": lambda: make_agent("panorama-seeker", env),
    }
    if args.explorer:
        for name, open_ways, follow_red in (
            ("seeker, imagining red", "off", "always"),
            ("seeker, imagining", "widest", "always"),
            ("seeker, imagining, random open way, no red", "random", "never"),
            ("seeker, imagining, random open way, red unseen", "random", "unseen"),
        ):
            builders[name] = lambda open_ways=open_ways, follow_red=follow_red: make_agent(
                "panorama-seeker",
                env,
                explorer=args.explorer,
                sampling_steps=args.sampling_steps,
                open_ways=open_ways,
                follow_red=follow_red,
            )
    if args.real_lookahead:
        for name, open_ways, follow_red in (
            ("seeker, real lookahead red", "off", "always"),
            ("seeker, real lookahead", "widest", "always"),
            ("seeker, real lookahead, random open way", "random", "always"),
            ("seeker, real lookahead, random open way, no red", "random", "never"),
            ("seeker, real lookahead, random open way, red unseen", "random", "unseen"),
        ):
            builders[name] = lambda open_ways=open_ways, follow_red=follow_red: RealLookaheadSeeker(env, open_ways, follow_red)
    if args.agents:
        unknown = sorted(set(args.agents) - set(builders))
        if unknown:
            parser.error(f"--agents: no agent named {', '.join(map(repr, unknown))} here; choose from {', '.join(map(repr, builders))}")
        builders = {name: build for name, build in builders.items() if name in args.agents or name == "seeker, blind"}
    agents = {name: build() for name, build in builders.items()}
    results = {name: play(env, agent, seeds) for name, agent in agents.items()}
    print(f"the red box in MiniWorld's four rooms, {args.episodes} real episodes (seeds {args.seed}+), at most 250 steps")
    print(f"{'agent':<28} {'success':>8} {'95% interval':>13} {'median steps (found)':>21} {'imagined walks/episode':>23}")
    for name, result in results.items():
        low, high = result["success_95"]
        print(
            f"{name:<28} {result['success']:>8.2f} {f'{low:.2f}-{high:.2f}':>13} {result['median_steps_to_box']:>21.0f}"
            f" {result['imagined_walks_per_episode']:>23.1f}"
        )
    blind = np.array(results["seeker, blind"]["won"])
    for name, result in results.items():
        if name.startswith(("seeker, imagining", "seeker, real")):
            won = np.array(result["won"])
            only_imagining, only_blind = int((won & ~blind).sum()), int((blind & ~won).sum())
            result["against_blind"] = {
                "only_this": only_imagining,
                "only_blind": only_blind,
                "mcnemar_p": mcnemar_p(only_imagining, only_blind),
            }
            print(
                f"{name} against blind, same seeds: won by it alone {only_imagining}, by blind alone {only_blind},"
                f" McNemar p = {result['against_blind']['mcnemar_p']:.3f}"
            )
    walls = None
    if args.explorer and args.wall_starts:
        walls = wall_knowledge(args.explorer, range(args.seed, args.seed + args.wall_starts), args.sampling_steps)
        print(
            f"does the explorer know walls? {walls['walks']} walks of 4 steps ({walls['blocked']} blocked: under 1 m of 2):"
            f" real distance vs imagined change, correlation {walls['correlation']:.2f};"
            f" a free walk imagined changing more than a blocked one {walls['auroc_free_over_blocked']:.0%} of pairs"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"command": vars(args), "results": results, "walls": walls}, file, indent=2)


if __name__ == "__main__":
    main()
