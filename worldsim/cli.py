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
  worldsim dream --agent scripted --steps 300 --video mario_dream.mp4 [--compare]
  worldsim eval --dataset worldsim/mario-heldout-v0 --json fidelity.json
"""


def _parse_agent_mix(spec: str) -> list[tuple[str, float]]:
    """``"dqn:0.7,scripted:0.3"`` -> ``[("dqn", 0.7), ("scripted", 0.3)]``; ``"random"`` -> weight 1."""
    mix = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise WorldsimError(
                f"agent weight {weight!r} in {spec!r} is not a number: write NAME:WEIGHT, e.g. dqn:0.7,scripted:0.3"
            ) from None
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


def _build_agents(
    mix: list[tuple[str, float]],
    overrides: dict[str, list[str]],
    env,
    *,
    need_trained: bool,
):
    from worldsim.agents import agent_class, make_agent
    from worldsim.config import load_config
    from worldsim.eval.collect import AgentShare

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
    import shlex

    from worldsim.envs import make_env
    from worldsim.eval.collect import collect_dataset, default_dataset_id

    if args.steps <= 0:
        raise WorldsimError(f"--steps must be a positive number of env steps, got {args.steps}")
    mix = _parse_agent_mix(args.agent)
    env_overrides, agent_overrides = _split_overrides(args.overrides, [name for name, _ in mix])
    env = make_env(args.env, env_overrides)
    agents = _build_agents(mix, agent_overrides, env, need_trained=True)
    dataset_id = args.dataset_id or default_dataset_id(args.env, [name for name, _ in mix])
    # The command that makes this dataset, spelled out in full: errors about it later quote it.
    command = shlex.join(
        ["worldsim", "collect", "--env", args.env, "--agent", args.agent, "--steps", str(args.steps), "--seed", str(args.seed),
         "--dataset-id", dataset_id, *args.overrides]
    )
    summary = collect_dataset(
        env,
        agents,
        args.steps,
        dataset_id,
        seed=args.seed,
        checkpoint_steps=args.checkpoint_steps,
        progress=not args.quiet,
        command=command,
        discard_staged=args.discard_staged,
    )
    env.close()
    print("\n".join(summary.lines()))
    return 0


def _cmd_learn(args) -> int:
    from worldsim.agents import agent_class
    from worldsim.config import load_config
    from worldsim.envs import make_env
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

    if args.eval_every <= 0 or args.eval_episodes <= 0:
        raise WorldsimError(f"--eval-every and --eval-episodes must be positive, got {args.eval_every} and {args.eval_episodes}")
    last: dict[str, float] = {}

    def evaluate(agent_) -> dict[str, float]:
        last.clear()
        last.update(evaluate_agent(eval_env, agent_, episodes=args.eval_episodes, first_seed=10_000))
        return dict(last)

    agent.learn(
        env,
        remaining,
        run_dir=args.out,
        evaluate=evaluate,
        eval_every=args.eval_every,
        checkpoint_every=args.eval_every,
    )
    print(f"trained {agent.trained_steps} steps; agent saved to {checkpoint}")
    # The agent evaluates at the end of every run (eval.csv, best.zip); its last scores:
    if last:
        print("evaluation: " + ", ".join(f"{k}={v:g}" for k, v in last.items()))
    print(f"best agent so far: {args.out / 'best.zip'}; learning curve: {args.out / 'eval.csv'}")
    return 0


def _cmd_rollout(args) -> int:
    from worldsim.envs import make_env
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
        result = run_episode(
            env,
            share.agent,
            args.seed + episode,
            on_step=(lambda _: frames.append(env.render())) if video else None,
            max_steps=args.max_steps,
        )
        x_pos = f", x_pos {result.x_pos}" if result.x_pos is not None else ""
        print(f"episode {episode} (seed {result.seed}): {result.steps} steps, return {result.episode_return:.1f}{x_pos}")
    if video:
        write_video(frames, video, fps=env.metadata.get("render_fps", 15))
        print(f"wrote {len(frames)} frames to {video}")
    env.close()
    return 0


def _cmd_dataset(args) -> int:
    import numpy as np

    from worldsim.envs import make_env
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
    if model_config.get("kind") == "diffusion_forcing_planner":
        from worldsim.train.planner_training import train_planner

        path = train_planner(model_config, train_config, args.out, command=command, progress=not args.quiet)
    else:
        from worldsim.eval.fidelity import heldout_curve
        from worldsim.train.world_model_training import train_world_model

        path = train_world_model(
            model_config, train_config, args.out, command=command, progress=not args.quiet, heldout_evaluator=heldout_curve
        )
    print(f"model written to {path}" if path else f"phases {train_config.get('phases')} done or stopped; model/ is written once every phase is done")
    return 0


def _dream_env(args, **kwargs):
    import gymnasium as gym

    options = {
        "checkpoint": args.checkpoint,
        "device": args.device,
        "sampling_steps": args.sampling_steps,
    }
    return gym.make(
        "worldsim/Mario-v0",
        **{key: value for key, value in options.items() if value is not None},
        **kwargs,
    )


def _parse_actions(spec: str, num_actions: int) -> list[int]:
    try:
        actions = [int(part) for part in spec.replace(" ", "").split(",") if part]
    except ValueError:
        raise WorldsimError(f"--actions {spec!r} is not a comma-separated list of action numbers, e.g. 1,1,3,3,0") from None
    if not actions or min(actions) < 0 or max(actions) >= num_actions:
        raise WorldsimError(f"--actions must be numbers in 0..{num_actions - 1}, got {spec!r}")
    return actions


def _cmd_dream(args) -> int:
    import numpy as np

    from worldsim.envs import make_env
    from worldsim.envs.rendering import upscale
    from worldsim.eval.dream_rollout import dream_rollout
    from worldsim.video import check_video_path, count_video_frames, write_video

    if args.steps <= 0:
        raise WorldsimError(f"--steps must be positive, got {args.steps}")
    video = check_video_path(args.video) if args.video else None
    dream = _dream_env(args)
    real = make_env("mario") if args.compare else None
    if args.actions is not None:
        if args.overrides:
            raise WorldsimError(f"overrides {args.overrides} configure an agent; --actions plays a fixed list")
        result = dream_rollout(
            dream,
            actions=_parse_actions(args.actions, dream.action_space.n),
            steps=args.steps,
            seed=args.seed,
            real=real,
        )
    else:
        mix = _parse_agent_mix(args.agent)
        if len(mix) != 1:
            raise WorldsimError(f"dream plays one agent, got {args.agent!r}: pass --agent NAME")
        env_overrides, agent_overrides = _split_overrides(args.overrides, [mix[0][0]])
        if env_overrides:
            raise WorldsimError(f"overrides {env_overrides} change an env; use --checkpoint, --device and --sampling-steps for the dream")
        (share,) = _build_agents(mix, agent_overrides, real if real is not None else dream, need_trained=True)
        result = dream_rollout(dream, agent=share.agent, steps=args.steps, seed=args.seed, real=real)
    steps = len(result.actions)
    ended = f", the dream ended (death or flag) at step {result.dream_end}" if result.dream_end else ""
    print(f"dreamed {steps} steps, predicted return {sum(result.dream_rewards):.1f}{ended}")
    if real is not None:
        real_end = f", ended at step {result.real_end}" if result.real_end else ""
        print(f"real game under the same actions: return {sum(result.real_rewards):.1f}{real_end}")
        real.close()
    if video:
        scale = args.scale
        if real is not None:  # real on the left, dream on the right, a 2-pixel gap between
            gap = np.full((64 * scale, 2 * scale, 3), 255, np.uint8)
            frames = [
                np.concatenate([upscale(r, scale), gap, upscale(d, scale)], axis=1)
                for r, d in zip(result.real_frames, result.dream_frames, strict=False)
            ]
        else:
            frames = [upscale(frame, scale) for frame in result.dream_frames]
        write_video(frames, video, fps=15)
        held = count_video_frames(video)  # the encoder may drop the last frame: report what the file holds
        dropped = f" (the encoder dropped {len(frames) - held} of {len(frames)})" if held != len(frames) else ""
        print(f"wrote {held} frames to {video}{dropped}")
    dream.close()
    return 0


# SIMPLE_MOVEMENT: NOOP, right, right+A, right+B, right+A+B, A, left. Arrows move, X jumps (A), Z runs (B).
def _keys_to_action(pressed, pygame) -> int:
    right, left, jump, run = (
        pressed[pygame.K_RIGHT],
        pressed[pygame.K_LEFT],
        pressed[pygame.K_x] or pressed[pygame.K_UP],
        pressed[pygame.K_z],
    )
    if right:
        return 4 if jump and run else 2 if jump else 3 if run else 1
    if left:
        return 6
    return 5 if jump else 0


def _cmd_play(args) -> int:
    try:
        import pygame
    except ImportError:
        raise WorldsimError("worldsim play needs pygame: pip install 'worldsim[play]'") from None

    env = _dream_env(args, render_mode="human", render_scale=args.scale)
    print("playing the dream: arrows move, X (or up) jumps, Z runs, R restarts, Esc quits")
    env.reset(seed=args.seed)
    episode_return, steps, total = 0.0, 0, 0
    while args.max_steps is None or total < args.max_steps:
        total += 1
        pygame.event.pump()
        pressed = pygame.key.get_pressed()
        if pressed[pygame.K_ESCAPE] or any(event.type == pygame.QUIT for event in pygame.event.get(pygame.QUIT)):
            break
        if pressed[pygame.K_r]:
            env.reset()
            episode_return, steps = 0.0, 0
            continue
        _, reward, terminated, truncated, info = env.step(_keys_to_action(pressed, pygame))
        episode_return, steps = episode_return + reward, steps + 1
        if terminated or truncated:
            cause = "flag" if info.get("flag_get") else "death" if info.get("is_dying") else "time limit"
            print(f"episode over after {steps} steps ({cause}), return {episode_return:.1f}")
            env.reset()
            episode_return, steps = 0.0, 0
    env.close()
    return 0


# How scripts/train_world_model_mario.sh collects the held-out episodes (keep the two in step); the
# DQN comes from scripts/train_dqn_mario.sh. Without a trained DQN, the fallback mix below.
HELDOUT_COLLECT = (
    "worldsim collect --env mario --agent scripted:0.4,dqn:0.4,random:0.2 --steps 6000 --seed 90000 --dataset-id {id} "
    "dqn.path=runs/dqn-mario/best.zip"
)
HELDOUT_COLLECT_WITHOUT_DQN = "worldsim collect --env mario --agent scripted:0.8,random:0.2 --steps 6000 --seed 90000 --dataset-id {id}"


def default_heldout_dataset() -> str:
    """The held-out dataset of the shipped model's training config (configs/train/mario.yaml ``data.heldout``)."""
    from worldsim.config import load_config

    return load_config("train", "mario")["data"]["heldout"]


def _cmd_eval(args) -> int:
    from worldsim.data.minari_io import check_dataset_id, dataset_dir, datasets_root

    heldout = default_heldout_dataset()
    dataset = args.dataset or heldout
    check_dataset_id(dataset)
    if dataset == heldout and not (dataset_dir(dataset) / "data").is_dir():
        # A fresh install has no datasets: say exactly how to make this one.
        raise WorldsimError(
            f"the held-out dataset {dataset!r} is not in {datasets_root()} (worldsim ships none): collect it with "
            f"`{HELDOUT_COLLECT.format(id=dataset)}` (needs the DQN of scripts/train_dqn_mario.sh; without it "
            f"`{HELDOUT_COLLECT_WITHOUT_DQN.format(id=dataset)}`), or pass --dataset ID, or set MINARI_DATASETS_PATH to where it is"
        )
    from worldsim.engine import resolve_device
    from worldsim.envs.dream import shipped_checkpoint
    from worldsim.eval.fidelity import evaluate_fidelity, write_json

    device = resolve_device(args.device)
    checkpoint = args.checkpoint or shipped_checkpoint()
    report = evaluate_fidelity(
        checkpoint,
        dataset,
        horizon=args.horizon,
        rollouts=args.rollouts,
        transitions=args.transitions,
        batch_size=args.batch_size,
        device=device,
        sampling_steps=args.sampling_steps,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(report.table())
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0


METHODS = {
    "df": {},  # the full planner: pyramid schedule, Monte-Carlo guidance, PD tracking
    "df-full-sequence": {"schedule": "full"},  # Diffuser-style: all tokens denoised together
    "df-no-mc": {"mc_samples": 1},
    "df-actions": {"controller": "actions"},  # execute the planned actions instead of tracking
    "waypoint": None,  # the oracle: shortest path over cells, noiseless
    "random": None,
}


def _cmd_bench(args) -> int:
    import statistics

    import numpy as np

    from worldsim.agents import make_agent
    from worldsim.config import load_config
    from worldsim.eval import maze_bench

    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise WorldsimError(f"unknown methods {unknown}: choose from {', '.join(METHODS)}")
    planner_methods = [m for m in args.methods if METHODS[m] is not None]
    if planner_methods and args.planner is None:
        from worldsim.agents.df_planner import shipped_planner

        args.planner = shipped_planner(args.maze)
    if args.episodes < 1:
        raise WorldsimError(f"--episodes must be positive, got {args.episodes}")
    overrides = [f"agent.{o.split('.', 1)[1]}" if o.startswith("df_planner.") else o for o in args.overrides]
    if any(not o.startswith("agent.") for o in overrides):
        raise WorldsimError(f"overrides {args.overrides} must look like df_planner.guidance_scale=0.2")
    planner_config = {k: v for k, v in load_config("agent", "df_planner", overrides).items() if k != "path"}
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for task in args.tasks:
        env = maze_bench.make_eval_env(args.maze, task)
        first, _ = env.reset(seed=args.seed)  # episode 0's start: the single-episode replan and the plot
        paths_of_task: dict[str, np.ndarray] = {}  # episode 0 of every method, for one picture
        plans_of_task: dict[str, list] = {}
        for method in args.methods:
            options = METHODS[method]
            if options is None:
                name = "waypoint" if method == "waypoint" else "random"
                extra = {"action_noise": 0.0} if method == "waypoint" else {}
                policy = maze_bench.per_episode_policy(
                    lambda e, n=name, x=extra: make_agent(n, e, **x), args.maze, task, args.episodes, args.seed
                )
                result = maze_bench.run_policy(method, args.maze, task, policy, args.episodes, args.seed, progress=not args.quiet)
            else:
                planner = make_agent("df_planner", env, path=args.planner, **{**planner_config, **options}, seed=args.seed)
                first_plans = []

                def policy(observations, restart, planner=planner, first_plans=first_plans):
                    replans = len(planner.plan_seconds)
                    actions = planner.act_batch(observations, restart)
                    if len(planner.plan_seconds) > replans:
                        first_plans.append(planner.plans[0].copy())
                    return actions

                result = maze_bench.run_policy(method, args.maze, task, policy, args.episodes, args.seed, progress=not args.quiet)
                result.replan_ms_batched = 1000 * statistics.median(planner.plan_seconds)
                result.replan_ms_single = maze_bench.replan_ms(planner, first["observation"][None], first["desired_goal"][None])
                picture = args.out / f"{args.maze}-{task}-{method}-episode0.png"
                maze_bench.draw_episode(
                    args.maze, {method: result.paths[0]}, first_plans, first["desired_goal"], picture, plans_label=f"{method} plans"
                )
                plans_of_task.setdefault(method, first_plans)
            paths_of_task[method] = result.paths[0]
            results.append(result)
            print(
                f"{task:6s} {method:18s} success {100 * result.success_rate:5.1f}%  score {result.normalized_score_mean:6.1f}", flush=True
            )
        # Every method's episode 0 in one picture, with the first planner method's plans.
        plan_method = next(iter(plans_of_task), None)
        maze_bench.draw_episode(
            args.maze,
            paths_of_task,
            plans_of_task.get(plan_method, []),
            first["desired_goal"],
            args.out / f"{args.maze}-{task}-episode0.png",
            plans_label=f"{plan_method} plans",
        )
    table = maze_bench.results_table(results)
    print("\n" + table)
    (args.out / "results.md").write_text(table + "\n")
    (args.out / "results.json").write_text(maze_bench.results_json(results) + "\n")
    print(f"\nwrote {args.out / 'results.md'}, results.json and plots of episode 0")
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

    collect = add(
        "collect",
        "run agents in an env and write the episodes as a Minari dataset",
        _cmd_collect,
    )
    collect.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    collect.add_argument(
        "--agent",
        required=True,
        help="agent, or a mix by episode share: dqn:0.7,scripted:0.3",
    )
    collect.add_argument(
        "--steps",
        type=int,
        required=True,
        help="env steps to collect (the last episode is truncated)",
    )
    collect.add_argument("--dataset-id", help="Minari id, default worldsim/<env>-<agents>-v0")
    collect.add_argument(
        "--seed",
        type=int,
        default=0,
        help="episode k is seeded with seed + k (default 0)",
    )
    collect.add_argument(
        "--checkpoint-steps",
        type=int,
        default=1000,
        help="stage episodes every N steps (at an episode's end), so an interrupted run resumes (default 1000)",
    )
    collect.add_argument(
        "--discard-staged",
        action="store_true",
        help="delete the staged episodes of an unfinished run of this dataset id made with other arguments",
    )
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.add_argument("overrides", nargs="*", help=overrides_help)

    learn = add(
        "learn",
        "train a learning agent (dqn) in an env; resumes from --out after an interruption",
        _cmd_learn,
    )
    learn.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    learn.add_argument("--agent", required=True, help="a learning agent: dqn")
    learn.add_argument("--steps", type=int, required=True, help="total env steps of training")
    learn.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder: agent.zip, eval.csv, tensorboard/",
    )
    learn.add_argument(
        "--eval-every",
        type=int,
        default=25_000,
        help="evaluate and checkpoint every N steps (default 25000)",
    )
    learn.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        help="episodes per evaluation (seeds 10000...)",
    )
    learn.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the agent's network and exploration",
    )
    learn.add_argument("overrides", nargs="*", help=overrides_help)

    rollout = add(
        "rollout",
        "play episodes with an agent, optionally writing a video",
        _cmd_rollout,
    )
    rollout.add_argument("--env", required=True, help="env config (see `worldsim list`) or Gymnasium id")
    rollout.add_argument("--agent", required=True, help="agent name (see `worldsim list`)")
    rollout.add_argument("--episodes", type=int, default=1)
    rollout.add_argument("--max-steps", type=int, default=None, help="cut each episode after N steps")
    rollout.add_argument(
        "--seed",
        type=int,
        default=0,
        help="episode k is seeded with seed + k (default 0)",
    )
    rollout.add_argument("--video", help="write the frames to this .mp4 or .gif")
    rollout.add_argument("overrides", nargs="*", help=overrides_help)

    train = add(
        "train",
        "train a world model on Minari datasets; running it again resumes from --out",
        _cmd_train,
    )
    train.add_argument("--model", default="mario", help="model config (configs/model), default mario")
    train.add_argument(
        "--train",
        default="mario",
        help="training config (configs/train), default mario",
    )
    train.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder: checkpoint/, model/, curve.csv, tensorboard/",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--record-command", default=None, help=argparse.SUPPRESS)
    train.add_argument("overrides", nargs="*", help="Hydra overrides: model.KEY=VALUE, train.KEY=VALUE")

    def add_dream_options(sub) -> None:
        sub.add_argument(
            "--checkpoint",
            type=Path,
            help="world model folder (default: the model shipped in the package)",
        )
        sub.add_argument("--device", help="cuda or cpu (default: CUDA when available)")
        sub.add_argument(
            "--sampling-steps",
            type=int,
            help="Euler steps per frame (default: the checkpoint's)",
        )
        sub.add_argument("--seed", type=int, default=0)

    dream = add(
        "dream",
        "drive worldsim/Mario-v0 with an agent or a list of actions and write a video",
        _cmd_dream,
    )
    dream.add_argument(
        "--agent",
        default="scripted",
        help="agent acting on the frames (default scripted)",
    )
    dream.add_argument("--actions", help="a fixed action list instead of an agent, e.g. 1,1,3,3,0")
    dream.add_argument("--steps", type=int, default=300, help="at most this many steps (default 300)")
    dream.add_argument("--video", help="write the frames to this .mp4 or .gif")
    dream.add_argument(
        "--compare",
        action="store_true",
        help="play the real emulator beside the dream under the same actions",
    )
    dream.add_argument("--scale", type=int, default=4, help="video upscaling (default 4: 256x256)")
    add_dream_options(dream)
    dream.add_argument("overrides", nargs="*", help="agent overrides: agent.KEY=VALUE")

    play = add(
        "play",
        "play the dream with the keyboard in a pygame window (pip install 'worldsim[play]')",
        _cmd_play,
    )
    play.add_argument("--scale", type=int, default=8, help="window upscaling (default 8: 512x512)")
    play.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after N steps (default: play until Esc)",
    )
    add_dream_options(play)

    evaluate = add(
        "eval",
        "fidelity of a world model against held-out real episodes (PSNR, SSIM, heads)",
        _cmd_eval,
    )
    evaluate.add_argument(
        "--dataset",
        default=None,
        help="Minari dataset of held-out episodes (default: data.heldout of configs/train/mario.yaml, worldsim/mario-heldout-v0)",
    )
    evaluate.add_argument(
        "--horizon",
        type=int,
        default=32,
        help="autoregressive steps per rollout (default 32)",
    )
    evaluate.add_argument(
        "--rollouts",
        type=int,
        default=256,
        help="autoregressive rollouts (default 256)",
    )
    evaluate.add_argument(
        "--transitions",
        type=int,
        default=None,
        help="teacher-forced transitions (default: all)",
    )
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--json", type=Path, help="also write the report as JSON")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dream_options(evaluate)

    bench = add("bench", "benchmarks: `worldsim bench maze` runs the maze planning benchmark", _cmd_bench)
    bench.add_argument("suite", choices=["maze"], help="the benchmark to run")
    bench.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
    bench.add_argument("--planner", type=Path, help="planner folder for the df methods (default: the one shipped for the maze)")
    bench.add_argument("--methods", nargs="+", default=["df", "df-full-sequence", "waypoint", "random"], help=f"of {', '.join(METHODS)}")
    bench.add_argument("--tasks", nargs="+", default=["single", "multi"], choices=["single", "multi"])
    bench.add_argument("--episodes", type=int, default=100, help="evaluation episodes per task and method (default 100)")
    bench.add_argument("--seed", type=int, default=100_000, help="episode i resets with seed + i (default 100000)")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-maze"), help="folder for results.md, results.json, plots")
    bench.add_argument("--quiet", action="store_true")
    bench.add_argument("overrides", nargs="*", help="planner options: df_planner.guidance_scale=0.2, df_planner.replan_every=20")

    dataset = add(
        "dataset",
        "describe a Minari dataset; with --env, check that it fits that env",
        _cmd_dataset,
    )
    dataset.add_argument("dataset_id")
    dataset.add_argument("--env", help="env config whose spaces the dataset must match")

    add("list", "list the env configs and agents", _cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `bench maze` has two positional groups (the suite, then overrides) around its options;
    # argparse cannot take the overrides after the options, so they are collected here.
    if extra and getattr(args, "command", None) == "bench" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except WorldsimError as error:
        print(f"worldsim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # A command that knows what it kept says so (collect); otherwise the generic advice.
        print(f"worldsim: {interrupt or 'interrupted; run the same command again to resume'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
