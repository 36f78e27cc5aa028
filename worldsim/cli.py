"""The ``worldsim`` command line: a table of commands, each parsing its arguments and calling one function.

Every command builds an env and agents from the Hydra configs shipped in ``worldsim.configs``
(``--env NAME``, ``--agent NAME``), and takes Hydra-style overrides as trailing arguments:
``env.kwargs.level=1-2`` changes the env, ``scripted.epsilon=0.2`` one agent of a mix (or
``agent.epsilon=0.2`` when there is one agent). The work itself lives below the CLI (collection,
rollouts, dreams and benchmarks in ``worldsim.eval``, training in ``worldsim.train``, keyboard play
in ``worldsim.envs``): a new command is one ``Command`` entry in ``COMMANDS``.

Errors in what the user typed print one line (``worldsim: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worldsim.errors import WorldsimError
from worldsim.eval.heldout import default_heldout_dataset  # noqa: F401  (part of the CLI's API: the eval default)

EPILOG = """examples:
  worldsim rollout --env mario --agent scripted --video mario.mp4
  worldsim collect --env mario --agent scripted --steps 2000
  worldsim collect --env mario --agent dqn:0.7,scripted:0.3 --steps 100000 dqn.path=runs/dqn-mario/agent.zip
  worldsim learn --env mario --agent dqn --steps 100000 --out runs/dqn-mario
  worldsim dataset worldsim/mario-scripted-v0 --env mario
  worldsim train --model mario --train mario --out runs/wm-mario train.steps=8000
  worldsim dream --agent scripted --steps 300 --video mario_dream.mp4 [--compare]
  worldsim train --model video-bi-s6 --train video --out runs/video-bi-s6
  worldsim generate --checkpoint runs/video-bi-s6/model --frames 256 --video clip.mp4
  worldsim eval --dataset worldsim/mario-heldout-v0 --json fidelity.json
  worldsim align --reward realism:0.025+presence --steps 300 --out runs/align aligner.anchor_weight=50 aligner.real_dataset=worldsim/mario-explore-v0
"""

OVERRIDES_HELP = "Hydra overrides: env.kwargs.KEY=VALUE, NAME.KEY=VALUE (agent NAME), agent.KEY=VALUE"
ENV_HELP = "env config (see `worldsim list`) or Gymnasium id"


def _say(line: str) -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------- collect


def _collect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help=ENV_HELP)
    parser.add_argument("--agent", required=True, help="agent, or a mix by episode share: dqn:0.7,scripted:0.3")
    parser.add_argument("--steps", type=int, required=True, help="env steps to collect (the last episode is truncated)")
    parser.add_argument("--dataset-id", help="Minari id, default worldsim/<env>-<agents>-v0")
    parser.add_argument("--seed", type=int, default=0, help="episode k is seeded with seed + k (default 0)")
    parser.add_argument(
        "--checkpoint-steps",
        type=int,
        default=1000,
        help="stage episodes every N steps (at an episode's end), so an interrupted run resumes (default 1000)",
    )
    parser.add_argument(
        "--discard-staged",
        action="store_true",
        help="delete the staged episodes of an unfinished run of this dataset id made with other arguments",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)


def _cmd_collect(args) -> int:
    from worldsim.eval.collect import collect_from_configs

    summary = collect_from_configs(
        args.env,
        args.agent,
        args.steps,
        args.overrides,
        dataset_id=args.dataset_id,
        seed=args.seed,
        checkpoint_steps=args.checkpoint_steps,
        progress=not args.quiet,
        discard_staged=args.discard_staged,
    )
    print("\n".join(summary.lines()))
    return 0


# ----------------------------------------------------------------------------- learn


def _learn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help=ENV_HELP)
    parser.add_argument("--agent", required=True, help="a learning agent: dqn")
    parser.add_argument("--steps", type=int, required=True, help="total env steps of training")
    parser.add_argument("--out", type=Path, required=True, help="run folder: agent.zip, eval.csv, tensorboard/")
    parser.add_argument("--eval-every", type=int, default=25_000, help="evaluate and checkpoint every N steps (default 25000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (seeds 10000...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the agent's network and exploration")
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)


def _cmd_learn(args) -> int:
    from worldsim.eval.learning import learn_agent

    learn_agent(
        args.env,
        args.agent,
        args.steps,
        args.out,
        args.overrides,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        log=_say,
    )
    return 0


# ----------------------------------------------------------------------------- rollout


def _rollout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help=ENV_HELP)
    parser.add_argument("--agent", required=True, help="agent name (see `worldsim list`)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="cut each episode after N steps")
    parser.add_argument("--seed", type=int, default=0, help="episode k is seeded with seed + k (default 0)")
    parser.add_argument("--video", help="write the frames to this .mp4 or .gif")
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)


def _cmd_rollout(args) -> int:
    from worldsim.eval.episodes import rollout_from_configs

    rollout_from_configs(
        args.env, args.agent, args.episodes, args.overrides, seed=args.seed, max_steps=args.max_steps, video=args.video, log=_say
    )
    return 0


# ----------------------------------------------------------------------------- dataset


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset_id")
    parser.add_argument("--env", help="env config whose spaces the dataset must match")


def _cmd_dataset(args) -> int:
    from worldsim.data.minari_io import describe_dataset
    from worldsim.envs import make_env

    env = make_env(args.env) if args.env else None
    print("\n".join(describe_dataset(args.dataset_id, env=env, env_name=args.env)))
    return 0


# ----------------------------------------------------------------------------- train


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mario", help="model config (configs/model), default mario")
    parser.add_argument("--train", default="mario", help="training config (configs/train), default mario")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint/, model/, curve.csv, tensorboard/")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--record-command", default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: model.KEY=VALUE, train.KEY=VALUE")


def _heldout_curve(*args, **kwargs):
    """The world model's held-out curve, imported only when a world model trains."""
    from worldsim.eval.fidelity import heldout_curve

    return heldout_curve(*args, **kwargs)


def _cmd_train(args) -> int:
    import shlex

    from worldsim.config import load_config
    from worldsim.train.tasks import train_model

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
    path = train_model(model_config, train_config, args.out, command=command, progress=not args.quiet, heldout_evaluator=_heldout_curve)
    print(f"model written to {path}" if path else f"phases {train_config.get('phases')} done or stopped; model/ is written once every phase is done")
    return 0


# ----------------------------------------------------------------------------- dream, play, eval


def _dream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="world model folder (default: the model shipped in the package)")
    parser.add_argument("--device", help="cuda or cpu (default: CUDA when available)")
    parser.add_argument("--sampling-steps", type=int, help="Euler steps per frame (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)


def _dream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", default="scripted", help="agent acting on the frames (default scripted)")
    parser.add_argument("--actions", help="a fixed action list instead of an agent, e.g. 1,1,3,3,0")
    parser.add_argument("--steps", type=int, default=300, help="at most this many steps (default 300)")
    parser.add_argument("--video", help="write the frames to this .mp4 or .gif")
    parser.add_argument("--compare", action="store_true", help="play the real emulator beside the dream under the same actions")
    parser.add_argument("--scale", type=int, default=4, help="video upscaling (default 4: 256x256)")
    _dream_options(parser)
    parser.add_argument("overrides", nargs="*", help="agent overrides: agent.KEY=VALUE")


def _parse_actions(spec: str) -> list[int]:
    try:
        actions = [int(part) for part in spec.replace(" ", "").split(",") if part]
    except ValueError:
        raise WorldsimError(f"--actions {spec!r} is not a comma-separated list of action numbers, e.g. 1,1,3,3,0") from None
    return actions  # checked against the model's action count by run_dream


def _cmd_dream(args) -> int:
    from worldsim.eval.dream_rollout import run_dream

    run_dream(
        agent_spec=args.agent,
        actions=_parse_actions(args.actions) if args.actions is not None else None,
        steps=args.steps,
        seed=args.seed,
        compare=args.compare,
        video=args.video,
        scale=args.scale,
        checkpoint=args.checkpoint,
        device=args.device,
        sampling_steps=args.sampling_steps,
        overrides=args.overrides,
        log=_say,
    )
    return 0


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, default=8, help="window upscaling (default 8: 512x512)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N steps (default: play until Esc)")
    _dream_options(parser)


def _cmd_play(args) -> int:
    from worldsim.envs.play import play_dream

    play_dream(
        checkpoint=args.checkpoint,
        device=args.device,
        sampling_steps=args.sampling_steps,
        scale=args.scale,
        seed=args.seed,
        max_steps=args.max_steps,
        log=_say,
    )
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default=None,
        help="Minari dataset of held-out episodes (default: data.heldout of configs/train/mario.yaml, worldsim/mario-heldout-v0)",
    )
    parser.add_argument("--horizon", type=int, default=32, help="autoregressive steps per rollout (default 32)")
    parser.add_argument("--rollouts", type=int, default=256, help="autoregressive rollouts (default 256)")
    parser.add_argument("--transitions", type=int, default=None, help="teacher-forced transitions (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument("--probe", type=Path, default=None, help="inverse-dynamics probe checkpoint (default: the shipped idm-mario-v0)")
    parser.add_argument("--agent-episodes", type=int, default=10, help="scripted episodes played in the dream and the real game (0: skip)")
    parser.add_argument("--held-action-starts", type=int, default=3, help="starts per action held 20 steps, dream vs real (0: skip)")
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter folder (worldsim align) to merge into the checkpoint first")
    parser.add_argument("--adapter-scale", type=float, default=1.0, help="how much of the adapter to merge (1: as trained, 0: the base)")
    parser.add_argument(
        "--adapter-sigma-max", type=float, help="the adapter acts only at sampler noise levels <= this (1.0: the shipped model's last step)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _dream_options(parser)


def _cmd_eval(args) -> int:
    from worldsim.eval.heldout import evaluate_heldout

    report = evaluate_heldout(
        args.dataset,
        args.checkpoint,
        horizon=args.horizon,
        rollouts=args.rollouts,
        transitions=args.transitions,
        batch_size=args.batch_size,
        device=args.device,
        sampling_steps=args.sampling_steps,
        seed=args.seed,
        progress=not args.quiet,
        json_path=args.json,
        probe=args.probe,
        agent_episodes=args.agent_episodes,
        held_action_starts=args.held_action_starts,
        adapter=args.adapter,
        adapter_scale=args.adapter_scale,
        adapter_sigma_max=args.adapter_sigma_max,
    )
    print(report.table())
    if args.json:
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- align


def _align_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="mario-dream", help="dream env config (default mario-dream)")
    parser.add_argument("--reward", required=True, help="rewards joined with +, NAME:WEIGHT for a weight: realism, presence, consistency, scroll, ground")
    parser.add_argument("--steps", type=int, required=True, help="updates in all; each regenerates and scores aligner.batch_size frames (8)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: adapter/, model/ (merged), curve.csv, report.json; resumes")
    parser.add_argument("--baseline", choices=["policy-gradient"], help="train the gradient-free baseline (DDPO) instead, at the same reward queries")
    parser.add_argument("--dreams", type=int, default=8, help="dreams the behaviour agent plays at once, their contexts tiled to the batch (default 8)")
    parser.add_argument("--eval-dataset", help="score before/after on real windows of this Minari dataset (default: the start states)")
    parser.add_argument("--eval-contexts", type=int, default=64, help="contexts scored before and after (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="env.kwargs.KEY=VALUE, aligner.KEY=VALUE (configs/agent/aligner.yaml), REWARD.path=DIR")


def _cmd_align(args) -> int:
    from worldsim.eval.alignment import align_world_model

    align_world_model(
        args.env,
        args.reward,
        args.steps,
        args.out,
        args.overrides,
        baseline=args.baseline,
        num_dreams=args.dreams,
        eval_dataset=args.eval_dataset,
        eval_contexts=args.eval_contexts,
        seed=args.seed,
        progress=not args.quiet,
        log=_say,
    )
    return 0


# ----------------------------------------------------------------------------- bench, list


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from worldsim.eval.maze_bench import METHODS

    parser.add_argument("suite", choices=["maze"], help="the benchmark to run")
    parser.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
    parser.add_argument("--planner", type=Path, help="planner folder for the df methods (default: the one shipped for the maze)")
    parser.add_argument("--methods", nargs="+", default=["df", "df-full-sequence", "waypoint", "random"], help=f"of {', '.join(METHODS)}")
    parser.add_argument("--tasks", nargs="+", default=["single", "multi"], choices=["single", "multi"])
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per task and method (default 100)")
    parser.add_argument("--seed", type=int, default=100_000, help="episode i resets with seed + i (default 100000)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-maze"), help="folder for results.md, results.json, plots")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("overrides", nargs="*", help="planner options: df_planner.guidance_scale=0.2, df_planner.replan_every=20")


def _cmd_bench(args) -> int:
    from worldsim.eval.maze_bench import run_benchmark

    run_benchmark(
        args.maze,
        planner=args.planner,
        methods=args.methods,
        tasks=args.tasks,
        episodes=args.episodes,
        seed=args.seed,
        out=args.out,
        overrides=args.overrides,
        progress=not args.quiet,
        log=_say,
    )
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


# ----------------------------------------------------------------------------- the table


# ----------------------------------------------------------------------------- generate


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="video model folder (worldsim train --model video-<arch> writes OUT/model)")
    parser.add_argument("--frames", type=int, default=256, help="frames to generate (default 256)")
    parser.add_argument("--video", required=True, help="write the clip to this .mp4 or .gif")
    parser.add_argument("--start-dataset", help="start from the first frames of a real episode of this Minari dataset")
    parser.add_argument("--start-episode", type=int, default=0, help="which episode of --start-dataset (default 0)")
    parser.add_argument("--scale", type=int, default=4, help="video upscaling (default 4)")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cuda or cpu (default: CUDA when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_generate(args) -> int:
    from worldsim.eval.video_generation import generate_video

    generate_video(
        args.checkpoint,
        args.frames,
        args.video,
        seed=args.seed,
        start_dataset=args.start_dataset,
        start_episode=args.start_episode,
        scale=args.scale,
        fps=args.fps,
        device=args.device,
        progress=not args.quiet,
        log=_say,
    )
    return 0


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]  # adds the command's arguments
    run: Callable[[argparse.Namespace], int]  # parses what is left and calls one function


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


COMMANDS: tuple[Command, ...] = (
    Command("collect", "run agents in an env and write the episodes as a Minari dataset", _collect_arguments, _cmd_collect),
    Command("learn", "train a learning agent (dqn) in an env; resumes from --out after an interruption", _learn_arguments, _cmd_learn),
    Command("rollout", "play episodes with an agent, optionally writing a video", _rollout_arguments, _cmd_rollout),
    Command("train", "train a world model on Minari datasets; running it again resumes from --out", _train_arguments, _cmd_train),
    Command("generate", "write a long clip from a video diffusion model (mp4 or gif), continued in overlapping chunks", _generate_arguments, _cmd_generate),
    Command("dream", "drive worldsim/Mario-v0 with an agent or a list of actions and write a video", _dream_arguments, _cmd_dream),
    Command("play", "play the dream with the keyboard in a pygame window (pip install 'worldsim[play]')", _play_arguments, _cmd_play),
    Command("eval", "fidelity of a world model against held-out real episodes (PSNR, SSIM, heads)", _eval_arguments, _cmd_eval),
    Command("align", "fine-tune a dream's world model to rewards with a LoRA adapter (VADER); resumes from --out", _align_arguments, _cmd_align),
    Command("bench", "benchmarks: `worldsim bench maze` runs the maze planning benchmark", _bench_arguments, _cmd_bench),
    Command("dataset", "describe a Minari dataset; with --env, check that it fits that env", _dataset_arguments, _cmd_dataset),
    Command("list", "list the env configs and agents", _no_arguments, _cmd_list),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldsim",
        description="Neural world models as Gymnasium environments: collect data with agents, train, dream.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        sub.set_defaults(func=command.run)
        command.arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides (KEY=VALUE) are one positional group, which argparse takes only in one place: a
    # second group after an option (`--out DIR model.x=1`, or `bench maze`'s suite then options then
    # overrides) comes back unparsed, and is an override all the same.
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
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
