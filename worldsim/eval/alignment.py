"""``worldsim align``: fine-tune a dream's world model to rewards with a LoRA adapter, and measure what it gained.

The run folder ``OUT`` holds

* ``adapter/``: the adapter with its optimizer and update count (resumable: the same command
  continues it; ``gym.make("worldsim/Mario-v0", adapter=OUT/adapter)`` dreams with it);
* ``curve.csv``: per update, the rewards of the frames it scored, the gradient norm, the seconds;
* ``model/``: the world model with the adapter merged in, a plain world model checkpoint, so that
  ``worldsim eval --checkpoint OUT/model`` measures held-out fidelity after alignment;
* ``report.json``: each reward before (adapter switched off) and after, on the same evaluation
  contexts with the same sampling noise, with the updates, reward queries and seconds spent (with
  ``aligner.critic_steps``, realism as the refreshed critic of the run's end judges it, ``critic/``).

Evaluation contexts: real windows of ``eval_dataset`` (another policy's episodes, e.g.
``worldsim/mario-heldout-v0``) under their recorded actions, or, without one, the checkpoint's
start states under every action in turn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from worldsim.core.checkpoint import save_checkpoint
from worldsim.core.frames import from_uint8
from worldsim.errors import WorldsimError
from worldsim.models.lora import adapters_disabled, merge_lora
from worldsim.models.world_model import START_STATES_FILE, WorldModel
from worldsim.rewards import REWARDS, RewardSet, Scores, Transition, per_sample, valid_mean

BASELINES = {"policy-gradient": "aligner-ddpo"}  # --baseline NAME -> the agent that runs it
REPORT_FILE = "report.json"


@dataclass
class AlignmentReport:
    method: str
    updates: int
    reward_queries: int
    seconds: float
    evaluation: str  # where the evaluation contexts came from
    contexts: int
    before: dict[str, float] = field(default_factory=dict)  # "total" and each reward, adapter off
    after: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rows = [f"{self.method}: {self.updates} updates, {self.reward_queries} reward queries, {self.seconds:.0f} s"]
        rows += [f"  {name:12s} before {self.before[name]:+.4f}  after {self.after[name]:+.4f}" for name in self.before]
        return rows + [f"  (on {self.contexts} contexts of {self.evaluation})"]


def evaluation_contexts(
    model: WorldModel, start_states, history_frames: int, count: int, seed: int, dataset_id: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """``count`` contexts to score before and after: frames/actions for the sampler, and the rewards'
    history (``T = max(history_frames, K)`` frames, an episode start padded with its first frame)."""
    k = model.context_length
    length = max(history_frames, k)
    rng = np.random.default_rng(seed)
    if dataset_id is not None:
        from worldsim.data.minari_io import load_dataset
        from worldsim.data.sequences import SequenceDataset

        windows = SequenceDataset(load_dataset(dataset_id), length + 1, pad_start=length - 1)
        chosen = rng.choice(len(windows), size=min(count, len(windows)), replace=False)
        frames = from_uint8(torch.stack([windows[int(i)]["frames"] for i in chosen]))
        actions = torch.stack([windows[int(i)]["actions"] for i in chosen])
        history, history_actions, action = frames[:, :length], actions[:, :length], actions[:, length]
        source = f"{dataset_id} (recorded actions)"
    else:
        chosen = rng.integers(len(start_states.frames), size=count)
        context = from_uint8(torch.from_numpy(start_states.frames[chosen]))
        context_actions = torch.from_numpy(start_states.actions[chosen])
        pad = length - k
        history = torch.cat([context[:, :1].expand(-1, pad, -1, -1, -1), context], dim=1)
        history_actions = torch.cat([torch.zeros((len(chosen), pad), dtype=torch.int64), context_actions], dim=1)
        action = torch.arange(len(chosen)) % model.config.num_actions
        source = "the checkpoint's start states (every action in turn)"
    device = next(model.parameters()).device
    batch = {
        "frames": history[:, length - k :],
        "actions": torch.cat([history_actions[:, length - k + 1 :], action[:, None]], dim=1),
        "history": history,
        "history_actions": history_actions,
        "action": action,
    }
    return {key: value.to(device) for key, value in batch.items()}, source


@torch.no_grad()
def evaluate_rewards(
    model: WorldModel, rewards: RewardSet, contexts: dict[str, torch.Tensor], seed: int, batch_size: int = 32
) -> dict[str, float]:
    """Each reward's mean (over its valid samples) and the weighted ``total`` on the next frames the
    model generates from ``contexts``, with the same noise whatever the weights."""
    generator = torch.Generator(contexts["frames"].device).manual_seed(seed)
    scores: dict[str, list[torch.Tensor]] = {}
    totals = []
    for start in range(0, len(contexts["frames"]), batch_size):
        part = {key: value[start : start + batch_size] for key, value in contexts.items()}
        next_frame = model.sampler.sample(model.denoiser, part["frames"], part["actions"], generator=generator)
        batch_scores = rewards.score(Transition(part["history"], part["history_actions"], part["action"], next_frame))
        totals.append(per_sample(batch_scores, rewards.weights))
        for name, value in batch_scores.items():
            scores.setdefault(name, []).append(torch.stack([value.values, value.valid.float()]))
    merged = {name: torch.cat(parts, dim=1) for name, parts in scores.items()}
    return {"total": float(torch.cat(totals).mean())} | {name: valid_mean(Scores(v[0], v[1] > 0)) for name, v in merged.items()}


def split_align_overrides(overrides: list[str], agent_name: str) -> tuple[list[str], list[str]]:
    """``env.*`` to the env config; ``aligner.*`` (or ``agent.*``, or the agent's name) and the
    shorthand ``REWARD.path=FOLDER`` to the aligner's config."""
    env_overrides, agent_overrides = [], []
    for override in overrides:
        key, has_value, value = override.lstrip("+~").partition("=")
        head, _, rest = key.partition(".")
        if not has_value or not rest:
            raise WorldsimError(
                f"unexpected argument {override!r}: overrides look like env.kwargs.checkpoint=DIR, aligner.grad_steps=2 or realism.path=DIR"
            )
        if head == "env":
            env_overrides.append(override)
        elif head in ("aligner", "agent", agent_name):
            agent_overrides.append(f"{override[: len(override) - len(override.lstrip('+~'))]}agent.{rest}={value}")
        elif head in REWARDS and rest == "path":
            agent_overrides.append(f"agent.reward_paths.{head}={value}")
        else:
            raise WorldsimError(
                f"override {override!r} names {head!r}: start it with env, aligner or a reward name ({', '.join(REWARDS)}).path"
            )
    return env_overrides, agent_overrides


def make_dream_vector_env(env_name: str, overrides: list[str], num_dreams: int) -> gym.vector.VectorEnv:
    """``num_dreams`` dreams of the env config ``env_name`` in one vector env (one engine)."""
    from worldsim.config import available, load_config

    if env_name not in available("env"):
        raise WorldsimError(f"unknown env {env_name!r}: align needs a dream env config, e.g. mario-dream")
    config = load_config("env", env_name, overrides)
    spec = gym.spec(config["id"])
    if spec.vector_entry_point is None:
        raise WorldsimError(f"env {env_name!r} ({config['id']}) is not a dream: align needs a world-model env, e.g. --env mario-dream")
    kwargs = {key: value for key, value in (config.get("kwargs") or {}).items() if value is not None}
    max_steps = config.get("max_episode_steps") or spec.max_episode_steps
    return gym.make_vec(config["id"], num_envs=num_dreams, vectorization_mode="vector_entry_point", max_episode_steps=max_steps, **kwargs)


def align_world_model(
    env_name: str,
    reward_spec: str,
    steps: int,
    out: str | os.PathLike,
    overrides: list[str] | None = None,
    *,
    baseline: str | None = None,
    num_dreams: int = 8,
    eval_dataset: str | None = None,
    eval_contexts: int = 64,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> AlignmentReport:
    """Train (or resume) an adapter for ``steps`` updates and write ``OUT`` (see the module docstring)."""
    from worldsim.agents import agent_class
    from worldsim.config import load_config
    from worldsim.rewards import parse_reward_spec

    if steps < 1 or num_dreams < 1 or eval_contexts < 1:
        raise WorldsimError(f"--steps, --dreams and --eval-contexts must be >= 1, got {steps}, {num_dreams}, {eval_contexts}")
    if baseline is not None and baseline not in BASELINES:
        raise WorldsimError(f"unknown baseline {baseline!r}: choose one of {', '.join(BASELINES)}")
    parse_reward_spec(reward_spec)  # a bad spec fails before any model loads
    agent_name = BASELINES[baseline] if baseline else "aligner"
    env_overrides, agent_overrides = split_align_overrides(list(overrides or []), agent_name)
    settings = load_config("agent", agent_name, agent_overrides) | {"rewards": reward_spec, "seed": seed}
    out = Path(out)
    env = make_dream_vector_env(env_name, env_overrides, num_dreams)
    aligner = agent_class(agent_name)(env, **settings)
    counts = aligner.parameter_counts
    log(
        f"{aligner.method}: LoRA rank {aligner.settings.lora.rank}, {counts['lora']:,} trainable parameters beside {counts['base']:,} frozen"
    )
    aligner.learn(env, steps, run_dir=out, progress=progress)

    model, engine = aligner.model, aligner.engine
    contexts, source = evaluation_contexts(model, engine.start_states, aligner.rewards.history_frames, eval_contexts, seed, eval_dataset)
    with adapters_disabled(model):
        before = evaluate_rewards(model, aligner.rewards, contexts, seed)
    after = evaluate_rewards(model, aligner.rewards, contexts, seed)
    report = AlignmentReport(
        aligner.method,
        aligner.updates,
        aligner.updates * aligner.settings.batch_size,
        aligner.elapsed,
        source,
        len(contexts["frames"]),
        before,
        after,
    )
    _write_report(out / REPORT_FILE, report)

    merge_lora(model)  # the run is over: fold the adapter in and export a plain world model
    card = "\n".join(
        [
            "# Aligned world model",
            "",
            f"- The base world model with the LoRA adapter `{out / 'adapter'}` merged in ({aligner.method}, rewards {reward_spec}).",
            f"- {report.updates} updates of {aligner.settings.batch_size} frames ({report.reward_queries} reward queries), {report.seconds:.0f} s.",
            *(f"- {line.strip()}" for line in report.lines()[1:]),
            "",
        ]
    )
    save_checkpoint(
        out / "model",
        model.to("cpu"),
        {"model": model.config.to_dict()},
        files={START_STATES_FILE: engine.start_states.save_bytes(), "README.md": card},
    )
    env.close()
    for line in report.lines():
        log(line)
    log(f"adapter: {out / 'adapter'}; merged world model: {out / 'model'}; curve: {out / 'curve.csv'}")
    return report


def _write_report(path: Path, report: AlignmentReport) -> None:
    """``report.json``, strict JSON (a reward defined on no evaluation sample is null), via a temporary name."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(_nulls(asdict(report)), indent=2, allow_nan=False))
    os.replace(temporary, path)


def _nulls(values):
    if isinstance(values, dict):
        return {key: _nulls(value) for key, value in values.items()}
    return None if isinstance(values, float) and not np.isfinite(values) else values
