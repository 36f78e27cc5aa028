"""The ``worldsim`` command line.

Every command builds an env and agents from the Hydra configs shipped in ``worldsim.configs``
(``--env NAME``, ``--agent NAME``), and takes Hydra-style overrides as trailing arguments:
``env.kwargs.level=1-2`` changes the env, ``scripted.epsilon=0.2`` one agent of a mix (or
``agent.epsilon=0.2`` when there is one agent).

Errors in what the user typed print one line (``worldsim: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from worldsim.errors import WorldsimError

EPILOG = """examples:
  worldsim rollout --env mario --agent scripted --video mario.mp4
  worldsim collect --env mario --agent scripted --steps 2000
  worldsim collect --env mario --agent dqn:0.7,scripted:0.3 --steps 100000 dqn.path=runs/dqn-mario/agent.zip
  worldsim learn --env mario --agent dqn --steps 100000 --out runs/dqn-mario
  worldsim dataset worldsim/mario-scripted-v0 --env mario
  worldsim train --model mario --train mario --out runs/wm-mario train.steps=8000
"""


def _parse_agent_mix(spec: str) -> list[tuple[str, float]]:
    """``"dqn:0.7,scripted:0.3"`` -> ``[("dqn", 0.7), ("scripted", 0.3)]``; ``"random"`` -> weight 1."""
    mix = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise WorldsimError(f"agent weight {weight!r} in {spec!r} is not a number: write NAME:WEIGHT, e.g. dqn:0.7,scripted:0.3") from None
        mix.append((name, value))
    names = [name for name, _ in mix]
    if len(set(names)) != len(names):
        raise WorldsimError(f"agent mix {spec!r} names an agent twice: give each agent once with its weight")
    return mix


def _split_overrides(overrides: list[str], agent_names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Route ``env.*`` overrides to the env and ``NAME.*`` / ``agent.*`` to the agents' configs."""
    env_overrides: list[str] = []
    agent_overrides: dict[str, list[str]] = {name: [] for name in agent_names}
    for override in overrides:
        if "=" not in override:
            raise WorldsimError(f"unexpected argument {override!r}: overrides look like env.kwargs.level=1-2 or scripted.epsilon=0.1")
        prefix_symbol = "+" if override.startswith("+") else ""
        key = override.lstrip("+~")
        head, _, rest = key.partition(".")
        if head == "env":
            env_overrides.append(override)
        elif head in agent_overrides or (head == "agent" and len(agent_names) == 1):
            target = head if head in agent_overrides else agent_names[0]
            agent_overrides[target].append(f"{prefix_symbol}agent.{rest}")
        else:
            known = ", ".join(["env", *agent_names])
            raise WorldsimError(f"override {override!r} names {head!r}, which is not in this command: start it with one of {known}")
    return env_overrides, agent_overrides


def _build_agents(mix: list[tuple[str, float]], overrides: dict[str, list[str]], env, *, need_trained: bool):
    from worldsim.agents import agent_class, make_agent
    from worldsim.config import load_config
    from worldsim.data.collect import AgentShare

    shares = []
    for name, weight in mix:
        agent_class(name)  # unknown names fail here, before configs are read
        config: dict[str, Any] = load_config("agent", name, overrides[name])
        if need_trained and "path" in config and config["path"] is None:
            raise WorldsimError(
                f"the {name} agent must be trained first: pass {name}.path=PATH "
                f"(train one with `worldsim learn --agent {name} --out DIR`, then use DIR/agent.zip)"
            )
        shares.append(AgentShare(name, make_agent(name, env, **config), weight))
    return shares


def _cmd_collect(args) -> int:
    from worldsim.config import make_env
    from worldsim.data.collect import collect_dataset, default_dataset_id

    if args.steps <= 0:
        raise WorldsimError(f"--steps must be a positive number of env steps, got {args.steps}")
    mix = _parse_agent_mix(args.agent)
    env_overrides, agent_overrides = _split_overrides(args.overrides, [name for name, _ in mix])
    env = make_env(args.env, env_overrides)
    agents = _build_agents(mix, agent_overrides, env, need_trained=True)
    dataset_id = args.dataset_id or default_dataset_id(args.env, [name for name, _ in mix])
    summary = collect_dataset(env, agents, args.steps, dataset_id, seed=args.seed, checkpoint_steps=args.checkpoint_steps, progress=not args.quiet)
    env.close()
    print("\n".join(summary.lines()))
    return 0


def _cmd_learn(args) -> int:
    from worldsim.agents import agent_class
    from worldsim.config import load_config, make_env
    from worldsim.eval.episodes import evaluate_agent

    if args.steps < 0:
        raise WorldsimError(f"--steps must be >= 0, got {args.steps}")
    mix = _parse_agent_mix(args.agent)
    if len(mix) != 1:
        raise WorldsimError(f"learn trains one agent, got {args.agent!r}: pass --agent NAME")
    name = mix[0][0]
    cls = agent_class(name)
    if not hasattr(cls, "learn"):
        raise WorldsimError(f"agent {name!r} does not learn: choose a learning agent such as dqn")
    env_overrides, agent_overrides = _split_overrides(args.overrides, [name])
    env = make_env(args.env, env_overrides)
    eval_env = make_env(args.env, env_overrides)
    config = load_config("agent", name, agent_overrides[name])
    checkpoint = args.out / "agent.zip"
    if checkpoint.exists():
        agent = cls.load(checkpoint, env=env, epsilon=config.get("epsilon", 0.0))
        print(f"resuming {checkpoint} at step {agent.trained_steps}")
    else:
        config.pop("path", None)
        agent = cls(env, seed=args.seed, tensorboard_log=str(args.out / "tensorboard"), **config)
    remaining = max(args.steps - agent.trained_steps, 0)

    def evaluate(agent_) -> dict[str, float]:
        return evaluate_agent(eval_env, agent_, episodes=args.eval_episodes, first_seed=10_000)

    agent.learn(env, remaining, run_dir=args.out, evaluate=evaluate, eval_every=args.eval_every, checkpoint_every=args.eval_every)
    print(f"trained {agent.trained_steps} steps; agent saved to {checkpoint}")
    if agent.trained_steps % args.eval_every:  # otherwise the run's last evaluation already scored this agent
        final = evaluate(agent)
        print("evaluation: " + ", ".join(f"{k}={v:g}" for k, v in final.items()))
    return 0


def _cmd_rollout(args) -> int:
    from worldsim.config import make_env
    from worldsim.eval.episodes import run_episode
    from worldsim.video import check_video_path, write_video

    if args.episodes <= 0:
        raise WorldsimError(f"--episodes must be positive, got {args.episodes}")
    video = check_video_path(args.video) if args.video else None
    mix = _parse_agent_mix(args.agent)
    if len(mix) != 1:
        raise WorldsimError(f"rollout plays one agent, got {args.agent!r}: pass --agent NAME")
    env_overrides, agent_overrides = _split_overrides(args.overrides, [mix[0][0]])
    env = make_env(args.env, env_overrides, render_mode="rgb_array" if video else None)
    (share,) = _build_agents(mix, agent_overrides, env, need_trained=True)
    frames = []
    for episode in range(args.episodes):
        result = run_episode(env, share.agent, args.seed + episode, on_step=(lambda _: frames.append(env.render())) if video else None, max_steps=args.max_steps)
        x_pos = f", x_pos {result.x_pos}" if result.x_pos is not None else ""
        print(f"episode {episode} (seed {result.seed}): {result.steps} steps, return {result.episode_return:.1f}{x_pos}")
    if video:
        write_video(frames, video, fps=env.metadata.get("render_fps", 15))
        print(f"wrote {len(frames)} frames to {video}")
    env.close()
    return 0


def _cmd_dataset(args) -> int:
    import numpy as np

    from worldsim.config import make_env
    from worldsim.data.minari_io import dataset_dir, load_dataset

    env = make_env(args.env) if args.env else None
    dataset = load_dataset(args.dataset_id, env=env)
    episode = dataset[0]
    print(f"dataset       {dataset.id}  ({dataset_dir(dataset.id)})")
    print(f"episodes      {dataset.total_episodes}, steps {dataset.total_steps}")
    print(f"observations  {dataset.observation_space}")
    print(f"actions       {dataset.action_space}")
    print(f"info labels   {', '.join(sorted(episode.infos))}")
    returns = [float(np.sum(ep.rewards)) for ep in dataset.iterate_episodes()]
    print(f"return        mean {np.mean(returns):.1f}, median {np.median(returns):.1f}")
    if env is not None:
        print(f"spaces match  {args.env}")
    return 0


def _cmd_train(args) -> int:
    import shlex

    from worldsim.config import load_config
    from worldsim.train.trainer import train_world_model

    model_overrides, train_overrides = [], []
    for override in args.overrides:
        key = override.lstrip("+~")
        head, _, rest = key.partition(".")
        if "=" not in override or head not in ("model", "train") or not rest:
            raise WorldsimError(f"unexpected argument {override!r}: overrides look like model.unet.space_to_depth=2 or train.steps=100")
        prefix = override[: len(override) - len(key)]
        (model_overrides if head == "model" else train_overrides).append(f"{prefix}{head}.{rest}")
    model_config = load_config("model", args.model, model_overrides)
    train_config = load_config("train", args.train, train_overrides)
    command = "worldsim " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command is None else args.record_command
    path = train_world_model(model_config, train_config, args.out, command=command, progress=not args.quiet)
    print(f"model written to {path}")
    return 0


def _cmd_list(args) -> int:
    from worldsim.agents import AGENT_CLASSES
    from worldsim.config import available, load_config

    print("envs (--env):")
    for name in available("env"):
        print(f"  {name:18s} {load_config('env', name)['id']}")
    print("agents (--agent):")
    for name in sorted(AGENT_CLASSES):
        print(f"  {name:18s} {AGENT_CLASSES[name].split(':')[1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="worldsim",
        description="Neural world models as Gymnasium environments: collect data with agents, train, dream.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    overrides_help = "Hydra overrides: env.kwargs.KEY=VALUE, NAME.KEY=VALUE (agent NAME), agent.KEY=VALUE"

    def add(name: str, help_text: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    collect = add("collect", "run agents in an env and write the episodes as a Minari dataset", _cmd_collect)
    collect.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    collect.add_argument("--agent", required=True, help="agent, or a mix by episode share: dqn:0.7,scripted:0.3")
    collect.add_argument("--steps", type=int, required=True, help="env steps to collect (the last episode is truncated)")
    collect.add_argument("--dataset-id", help="Minari id, default worldsim/<env>-<agents>-v0")
    collect.add_argument("--seed", type=int, default=0, help="episode k is seeded with seed + k (default 0)")
    collect.add_argument("--checkpoint-steps", type=int, default=10_000, help="stage episodes every N steps, for resuming (default 10000)")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.add_argument("overrides", nargs="*", help=overrides_help)

    learn = add("learn", "train a learning agent (dqn) in an env; resumes from --out after an interruption", _cmd_learn)
    learn.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    learn.add_argument("--agent", required=True, help="a learning agent: dqn")
    learn.add_argument("--steps", type=int, required=True, help="total env steps of training")
    learn.add_argument("--out", type=Path, required=True, help="run folder: agent.zip, eval.csv, tensorboard/")
    learn.add_argument("--eval-every", type=int, default=25_000, help="evaluate and checkpoint every N steps (default 25000)")
    learn.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (seeds 10000...)")
    learn.add_argument("--seed", type=int, default=0, help="seed of the agent's network and exploration")
    learn.add_argument("overrides", nargs="*", help=overrides_help)

    rollout = add("rollout", "play episodes with an agent, optionally writing a video", _cmd_rollout)
    rollout.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    rollout.add_argument("--agent", required=True, help="agent name (see `worldsim list`)")
    rollout.add_argument("--episodes", type=int, default=1)
    rollout.add_argument("--max-steps", type=int, default=None, help="cut each episode after N steps")
    rollout.add_argument("--seed", type=int, default=0, help="episode k is seeded with seed + k (default 0)")
    rollout.add_argument("--video", help="write the frames to this .mp4 or .gif")
    rollout.add_argument("overrides", nargs="*", help=overrides_help)

    train = add("train", "train a world model on Minari datasets; running it again resumes from --out", _cmd_train)
    train.add_argument("--model", default="mario", help="model config (configs/model), default mario")
    train.add_argument("--train", default="mario", help="training config (configs/train), default mario")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoint/, model/, curve.csv, tensorboard/")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--record-command", default=None, help=argparse.SUPPRESS)
    train.add_argument("overrides", nargs="*", help="Hydra overrides: model.KEY=VALUE, train.KEY=VALUE")

    dataset = add("dataset", "describe a Minari dataset; with --env, check that it fits that env", _cmd_dataset)
    dataset.add_argument("dataset_id")
    dataset.add_argument("--env", help="env config whose spaces the dataset must match")

    add("list", "list the env configs and agents", _cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WorldsimError as error:
        print(f"worldsim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("worldsim: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
