"""Run agents in an env and write what they see and do as a Minari dataset.

``collect_dataset`` is resumable and never leaves a broken dataset behind:

* episodes are written to a hidden staging folder, ``<datasets root>/.staging/<dataset id>``,
  through Minari's own ``DataCollector`` (``add_to_dataset`` every ``checkpoint_steps``, at an
  episode boundary);
* only when the requested number of steps is complete is the dataset moved, with one rename, to
  ``<datasets root>/<dataset id>``, where ``minari.load_dataset`` finds it;
* a run killed on the way is resumed by running the same command again: it continues from the
  episodes already staged (episode ``k`` always uses seed ``seed + k``, so a resumed collection
  draws the same episodes as an uninterrupted one).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
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
    check_spaces_match,
    dataset_dir,
    datasets_root,
    minari_root,
)
from worldsim.errors import WorldsimError


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


def collect_dataset(
    env: gym.Env,
    agents: list[AgentShare],
    steps: int,
    dataset_id: str,
    *,
    seed: int = 0,
    checkpoint_steps: int = 10_000,
    progress: bool = True,
    description: str | None = None,
) -> CollectionSummary:
    """Collect exactly ``steps`` env steps with ``agents`` into the Minari dataset ``dataset_id``.

    Each episode is played by one agent, drawn with probability proportional to its weight. The
    last episode is cut (truncated) when the step budget runs out. Observations are stored
    losslessly (no JPEG), with the env's ``info`` dicts as labels.
    """
    if steps <= 0:
        raise WorldsimError(f"--steps must be a positive number of env steps, got {steps}")
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
    }
    staged = _open_staging(staging_root, dataset_id, run_config, env)

    summary = CollectionSummary(dataset_id, str(final_dir), 0, 0, 0.0, episodes_per_agent={s.name: 0 for s in agents})
    episode = staged.total_episodes if staged is not None else 0
    done = staged.total_steps if staged is not None else 0
    start_time = time.perf_counter()
    bar = tqdm(total=steps, initial=done, desc=f"collect {dataset_id}", unit="step", disable=not progress, dynamic_ncols=True)
    # Inside minari_root, the collector's own temporary files also go to the hidden staging folder.
    with minari_root(staging_root):
        collector = DataCollector(env, record_infos=True, jpeg_encoding=False)
        try:
            since_checkpoint = 0
            while done < steps:
                share = agents[np.random.default_rng([seed, episode]).choice(len(agents), p=weights / weights.sum())]
                observation, info = collector.reset(seed=seed + episode)
                share.agent.reset(seed=seed + episode)
                episode_return, ended = 0.0, False
                while done < steps and not ended:
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


def _open_staging(staging_root: Path, dataset_id: str, run_config: dict[str, Any], env: gym.Env) -> minari.MinariDataset | None:
    """The staged dataset of an interrupted run with the same arguments, or None to start afresh."""
    config_path = staging_root / "collect.json"
    if staging_root.exists():
        same_run = config_path.exists() and json.loads(config_path.read_text()) == json.loads(json.dumps(run_config))
        if same_run and (staging_root / dataset_id / "data").is_dir():
            try:
                with minari_root(staging_root):
                    staged = minari.load_dataset(dataset_id)
                check_spaces_match(staged, env)
                tqdm.write(f"resuming {dataset_id}: {staged.total_episodes} episodes, {staged.total_steps} steps already collected")
                return staged
            except WorldsimError:
                raise
            except Exception:  # killed while Minari was writing: the staged data cannot be trusted
                pass
        shutil.rmtree(staging_root)
    staging_root.mkdir(parents=True)
    _write_atomically(config_path, json.dumps(run_config, indent=2))
    return None


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
                description=description or f"worldsim collect: {agents} in {run_config['env']}, seed {run_config['seed']}",
                requirements=["worldsim"],
            )
    collector.add_to_dataset(staged)
    return staged


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
