"""Run agents in an env and write what they see and do as a Minari dataset.

``collect_dataset`` is resumable and never leaves a broken dataset behind:

* episodes are written to a hidden staging folder, ``<datasets root>/.staging/<dataset id>``,
  through Minari's own ``DataCollector`` (``add_to_dataset`` every ``checkpoint_steps``, 1000 by
  default, at an episode boundary; a Ctrl-C is held until the next step begins, so it never lands
  inside Minari's writes);
* only when the requested number of steps is complete is the dataset moved, with one rename, to
  ``<datasets root>/<dataset id>``, where ``minari.load_dataset`` finds it;
* a run killed on the way is resumed by running the same command again: it continues from the
  episodes already staged (episode ``k`` always uses seed ``seed + k``, so a resumed collection
  draws the same episodes as an uninterrupted one). A Ctrl-C says how many steps were kept;
* staged episodes are never thrown away silently: a run with other arguments over a staged one
  is an error, unless ``discard_staged`` is set; staged data that cannot be read (killed while
  Minari wrote it) is dropped with a message saying so.

It sits in ``worldsim.eval``, beside the agents it runs, not in ``worldsim.data``: the data layer
reads and writes Minari datasets and knows no agents (``worldsim.core.layers``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari import DataCollector
from minari.dataset.minari_dataset import parse_dataset_id
from minari.namespace import create_namespace, list_local_namespaces
from tqdm.auto import tqdm

from worldsim.agents import Agent
from worldsim.data.minari_io import (
    check_dataset_id,
    check_readable,
    check_spaces_match,
    dataset_dir,
    datasets_root,
    minari_root,
)
from worldsim.errors import WorldsimError

DEFAULT_CHECKPOINT_STEPS = 1000  # stage episodes about this often: at most ~1000 steps lost to a kill


class CollectionInterrupted(KeyboardInterrupt):
    """Ctrl-C during a collection; its message says what was kept and how to go on."""


@dataclass
class AgentShare:
    """One agent of a collection mix and the fraction of episodes it plays."""

    name: str
    agent: Agent
    weight: float


@dataclass
class CollectionSummary:
    dataset_id: str
    path: str
    episodes: int
    steps: int
    seconds: float
    # Per episode played in this run (a resumed run does not replay the staged episodes):
    episode_returns: list[float] = field(default_factory=list)
    final_x_pos: list[int] = field(default_factory=list)  # Mario only: x_pos at each episode's end
    flags: int = 0
    episodes_per_agent: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        returns = np.asarray(self.episode_returns or [np.nan])
        lines = [
            f"dataset   {self.dataset_id}  ({self.path})",
            f"episodes  {self.episodes}  (played in this run: {', '.join(f'{k} {v}' for k, v in self.episodes_per_agent.items())})",
            f"steps     {self.steps}  ({self.steps / max(self.seconds, 1e-9):.0f} steps/s in this run)",
            f"return    mean {np.mean(returns):.1f}, median {np.median(returns):.1f}, max {np.max(returns):.1f}",
        ]
        if self.final_x_pos:
            xs = np.asarray(self.final_x_pos)
            lines.append(f"x_pos     median {np.median(xs):.0f}, max {xs.max()}, flags {self.flags}")
        return lines


def default_dataset_id(env_name: str, agent_names: list[str]) -> str:
    return f"worldsim/{env_name}-{'-'.join(agent_names)}-v0"


def collect_from_configs(
    env_name: str,
    agent_spec: str,
    steps: int,
    overrides: list[str] | None = None,
    *,
    dataset_id: str | None = None,
    seed: int = 0,
    checkpoint_steps: int = DEFAULT_CHECKPOINT_STEPS,
    progress: bool = True,
    discard_staged: bool = False,
) -> CollectionSummary:
    """``worldsim collect``: the env and the agents (a mix such as ``dqn:0.7,scripted:0.3``) built
    from their configs with Hydra ``overrides``, then ``collect_dataset``.

    The dataset's description records the full ``worldsim collect`` command that makes it again.
    """
    import shlex

    from worldsim.envs import make_env
    from worldsim.eval.agent_configs import build_agents, parse_agent_mix, split_overrides

    if steps <= 0:
        raise WorldsimError(f"--steps must be a positive number of env steps, got {steps}")
    overrides = list(overrides or [])
    mix = parse_agent_mix(agent_spec)
    names = [name for name, _ in mix]
    env_overrides, agent_overrides = split_overrides(overrides, names)
    env = make_env(env_name, env_overrides)
    try:
        agents = build_agents(mix, agent_overrides, env, need_trained=True)
        dataset_id = dataset_id or default_dataset_id(env_name, names)
        # The command that makes this dataset, spelled out in full: errors about it later quote it.
        command = shlex.join(
            ["worldsim", "collect", "--env", env_name, "--agent", agent_spec, "--steps", str(steps), "--seed", str(seed),
             "--dataset-id", dataset_id, *overrides]
        )  # fmt: skip
        return collect_dataset(
            env,
            agents,
            steps,
            dataset_id,
            seed=seed,
            checkpoint_steps=checkpoint_steps,
            progress=progress,
            command=command,
            discard_staged=discard_staged,
        )
    finally:
        env.close()


def collect_dataset(
    env: gym.Env,
    agents: list[AgentShare],
    steps: int,
    dataset_id: str,
    *,
    seed: int = 0,
    checkpoint_steps: int = DEFAULT_CHECKPOINT_STEPS,
    progress: bool = True,
    description: str | None = None,
    command: str | None = None,
    discard_staged: bool = False,
) -> CollectionSummary:
    """Collect exactly ``steps`` env steps with ``agents`` into the Minari dataset ``dataset_id``.

    Each episode is played by one agent, drawn with probability proportional to its weight. The
    last episode is cut (truncated) when the step budget runs out. Observations are stored
    losslessly (no JPEG), with the env's ``info`` dicts as labels. ``command`` (the command line
    that runs this) goes to the dataset's description, so an error about the dataset later can
    say how to make it again. ``discard_staged`` deletes a staged run made with other arguments
    instead of refusing to start.
    """
    if steps <= 0:
        raise WorldsimError(f"--steps must be a positive number of env steps, got {steps}")
    if checkpoint_steps <= 0:
        raise WorldsimError(f"--checkpoint-steps must be a positive number of env steps, got {checkpoint_steps}")
    if not agents:
        raise WorldsimError("no agent to collect with: pass --agent NAME (or NAME:WEIGHT,NAME:WEIGHT)")
    weights = np.array([share.weight for share in agents], dtype=float)
    if (weights <= 0).any() or not np.isfinite(weights).all():
        raise WorldsimError(f"agent weights must be positive, got {weights.tolist()}")
    check_dataset_id(dataset_id)
    final_dir = dataset_dir(dataset_id)
    if final_dir.exists():
        raise WorldsimError(
            f"dataset {dataset_id!r} already exists at {final_dir}: choose a new --dataset-id (e.g. bump -vN) "
            f"or delete it with `minari delete {dataset_id}`"
        )

    staging_root = datasets_root() / ".staging" / dataset_id.replace("/", "__")
    run_config = {
        "dataset_id": dataset_id,
        "steps": steps,
        "seed": seed,
        "agents": [(share.name, share.weight) for share in agents],
        "env": env.spec.id if env.spec else repr(env.unwrapped),
        "env_kwargs": json.loads(json.dumps(env.spec.kwargs if env.spec else {}, default=str)),
        "command": command,
    }
    staged = _open_staging(staging_root, dataset_id, run_config, env, discard_staged, checkpoint_steps)

    summary = CollectionSummary(dataset_id, str(final_dir), 0, 0, 0.0, episodes_per_agent={s.name: 0 for s in agents})
    episode = staged.total_episodes if staged is not None else 0
    done = staged.total_steps if staged is not None else 0
    start_time = time.perf_counter()
    bar = tqdm(total=steps, initial=done, desc=f"collect {dataset_id}", unit="step", disable=not progress, dynamic_ncols=True)
    # Inside minari_root, the collector's own temporary files also go to the hidden staging folder.
    with minari_root(staging_root), _ctrl_c_between_steps() as ctrl_c:
        collector = DataCollector(env, record_infos=True, jpeg_encoding=False)
        try:
            since_checkpoint = 0
            while done < steps:
                share = agents[np.random.default_rng([seed, episode]).choice(len(agents), p=weights / weights.sum())]
                observation, info = collector.reset(seed=seed + episode)
                share.agent.reset(seed=seed + episode)
                episode_return, ended = 0.0, False
                while done < steps and not ended:
                    ctrl_c.check()
                    observation, reward, terminated, truncated, info = collector.step(share.agent.act(observation, info))
                    episode_return += float(reward)
                    done += 1
                    since_checkpoint += 1
                    ended = terminated or truncated
                    bar.update(1)
                episode += 1
                summary.episodes_per_agent[share.name] += 1
                summary.episode_returns.append(episode_return)
                if "x_pos" in info:
                    summary.final_x_pos.append(int(info["x_pos"]))
                    summary.flags += int(bool(info.get("flag_get", False)))
                bar.set_postfix(episodes=episode, ret=f"{episode_return:.0f}", refresh=False)
                if since_checkpoint >= checkpoint_steps or done >= steps:
                    # The collector marks an episode cut by the step budget as truncated.
                    staged = _checkpoint(collector, staged, dataset_id, run_config, description)
                    since_checkpoint = 0
                    ctrl_c.check()
        except KeyboardInterrupt:
            kept = staged.total_steps if staged is not None else 0
            if kept:
                message = (
                    f"interrupted: {kept} of {steps} steps of {dataset_id!r} are staged in {staging_root}; "
                    "run the same command again to resume from them"
                )
            else:
                message = (
                    f"interrupted before the first {checkpoint_steps} steps of {dataset_id!r} were staged: nothing was kept, "
                    "and the same command starts again from zero (--checkpoint-steps N stages more often)"
                )
            raise CollectionInterrupted(message) from None
        finally:
            # No collector.close(): it would close the caller's env. The collector's temporary folder
            # is inside the staging folder, which publishing removes.
            bar.close()

    _publish(staging_root, dataset_id, final_dir)
    dataset = minari.load_dataset(dataset_id)
    summary.episodes = dataset.total_episodes
    summary.steps = dataset.total_steps
    summary.seconds = time.perf_counter() - start_time
    return summary


def _open_staging(
    staging_root: Path,
    dataset_id: str,
    run_config: dict[str, Any],
    env: gym.Env,
    discard_staged: bool = False,
    checkpoint_steps: int = DEFAULT_CHECKPOINT_STEPS,
) -> minari.MinariDataset | None:
    """The staged dataset of an interrupted run with the same arguments, or None to start afresh.

    Staged episodes of a run with other arguments are kept (an error says how to finish or
    discard them) unless ``discard_staged``; every other case that starts afresh says why.
    """
    config_path = staging_root / "collect.json"
    if staging_root.exists():
        has_data = (staging_root / dataset_id / "data").is_dir()
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, ValueError):
            previous = None
        differences = _differences(previous, run_config) if isinstance(previous, dict) else ["arguments (its collect.json cannot be read)"]
        if discard_staged:
            tqdm.write(f"{dataset_id}: discarding the staged run in {staging_root} (--discard-staged)")
        elif differences and has_data:
            was = f" (it was `{previous['command']}`)" if isinstance(previous, dict) and previous.get("command") else ""
            raise WorldsimError(
                f"{staging_root} holds an unfinished collection of {dataset_id!r} with other {', '.join(differences)}{was}: "
                "run that command again to finish it, or add --discard-staged to delete its episodes and start this one"
            )
        elif has_data:
            staged = _load_staged(staging_root, dataset_id, env)
            if staged is not None:
                tqdm.write(f"resuming {dataset_id}: {staged.total_episodes} episodes, {staged.total_steps} steps already collected")
                return staged
        else:
            tqdm.write(
                f"{dataset_id}: the interrupted run kept no episodes (it stopped before its first {checkpoint_steps} steps "
                "were staged); starting from zero"
            )
        shutil.rmtree(staging_root)
    staging_root.mkdir(parents=True)
    _write_atomically(config_path, json.dumps(run_config, indent=2))
    return None


def _differences(previous: dict[str, Any], run_config: dict[str, Any]) -> list[str]:
    """The arguments in which a staged run differs from this one, as ``name (X there, Y now)``.

    The recorded command itself is not compared (the same run may be spelled differently), nor
    keys that a staged run of an older worldsim did not record.
    """
    current = json.loads(json.dumps(run_config))
    return [
        f"{key} ({previous[key]} there, {current[key]} now)"
        for key in current
        if key != "command" and key in previous and previous[key] != current[key]
    ]


def _load_staged(staging_root: Path, dataset_id: str, env: gym.Env) -> minari.MinariDataset | None:
    """The staged dataset, or None (with a message) when it cannot be read back."""
    try:
        with minari_root(staging_root):
            staged = minari.load_dataset(dataset_id)
        check_readable(dataset_id, staging_root / dataset_id)
    except Exception as error:  # killed while Minari was writing: the staged data cannot be trusted
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        tqdm.write(f"{dataset_id}: the staged episodes in {staging_root} cannot be read ({reason}); starting from zero")
        return None
    check_spaces_match(staged, env)
    return staged


class _CtrlC:
    """A Ctrl-C (SIGINT) received during a collection, raised as ``KeyboardInterrupt`` at ``check``."""

    def __init__(self):
        self.received = False

    def check(self) -> None:
        if self.received:
            self.received = False
            raise KeyboardInterrupt


@contextmanager
def _ctrl_c_between_steps() -> Iterator[_CtrlC]:
    """Hold a Ctrl-C until the next step begins, so that it never lands inside Minari's writes.

    Minari writes an episode to HDF5 inside ``DataCollector.step`` (when it ends) and at each
    checkpoint; an interrupt raised inside h5py can be swallowed there, and the collection ran on.
    The handler only notes the signal; the loop raises it between steps. Only the main thread can set
    signal handlers; elsewhere Ctrl-C keeps its default behaviour.
    """
    ctrl_c = _CtrlC()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield ctrl_c
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: setattr(ctrl_c, "received", True))
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def _checkpoint(collector: DataCollector, staged, dataset_id: str, run_config: dict[str, Any], description: str | None):
    if staged is None:
        agents = "+".join(f"{name}({weight:g})" for name, weight in run_config["agents"])
        with warnings.catch_warnings():
            # Minari advises an author e-mail and an eval env; the collecting env is the eval env here.
            warnings.filterwarnings("ignore", message=r"`(author_email|eval_env)` is set to None", category=UserWarning)
            return collector.create_dataset(
                dataset_id,
                algorithm_name=agents,
                author="worldsim",
                code_permalink="worldsim collect",
                description=description or _description(run_config, agents),
                requirements=["worldsim"],
            )
    collector.add_to_dataset(staged)
    return staged


def _description(run_config: dict[str, Any], agents: str) -> str:
    what = f"{agents} in {run_config['env']}, seed {run_config['seed']}"
    return f"`{run_config['command']}` ({what})" if run_config.get("command") else f"worldsim collect: {what}"


def _publish(staging_root: Path, dataset_id: str, final_dir: Path) -> None:
    """Move the complete dataset into Minari's folder with one rename, then drop the staging."""
    namespace = parse_dataset_id(dataset_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging_root / dataset_id, final_dir)
    shutil.rmtree(staging_root)
    if not any(staging_root.parent.iterdir()):
        staging_root.parent.rmdir()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
