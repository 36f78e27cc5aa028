"""``worldsim eval``: a world model against held-out real episodes, by default the held-out dataset
of the shipped model's training config (with the command that collects it when missing).

The evaluation has three parts, each beside its trivial baseline:

* fidelity (``worldsim.eval.fidelity``): PSNR beside copying the last frame, changed pixels,
  controllability (delta-PSNR), scroll, ends;
* the inverse-dynamics probe (``worldsim.eval.inverse_dynamics``): accuracy on dreamed transitions
  over accuracy on real ones (and on copied frames);
* agents (``worldsim.eval.progress``): how far the scripted runner gets in the dream and in the real
  game from the same starts, and each action held from the same starts.

A world model of a multi-agent game (Cooperative Pong) gets the fidelity part with a delta-PSNR per
agent (only that agent's actions random), and in place of the Mario-only parts (probe, agents), the
rally lengths of the game's scripted players in the dream and in the real game
(``worldsim.eval.rally``). Any other game (the MiniWorld room) gets the fidelity part.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from worldsim.errors import WorldsimError

SHIPPED_PROBE = "idm-mario-v0"
MARIO_REAL_ENV = "worldsim/MarioReal-v0"
# For a multi-agent game: its registered dream (joint view) and the scripted agent whose rallies are compared.
MULTI_AGENT_GAMES = {"worldsim/CoopPong-v0": {"dream": "worldsim/CoopPong-dream-v0", "agent": "scripted-pong"}}


@dataclass
class HeldoutEvaluation:
    fidelity: object  # worldsim.eval.fidelity.FidelityReport
    probe: object | None = None  # worldsim.eval.inverse_dynamics.ProbeReport
    progress: object | None = None  # worldsim.eval.progress.ProgressReport
    held_actions: object | None = None  # worldsim.eval.progress.ConstantActionReport
    rallies: list | None = None  # worldsim.eval.rally.RallyLengths, real then dream

    def table(self) -> str:
        parts = [self.fidelity.table()]
        if self.probe is not None:
            p = self.probe
            parts.append(
                "\n".join(
                    [
                        "| inverse-dynamics probe: which action was held | accuracy |",
                        "|---|---:|",
                        f"| on real frames | {p.real_accuracy:.3f} ({p.clips} clips of one action held) |",
                        f"| on dreamed frames | {p.dream_accuracy:.3f} ({p.dream_over_real:.0%} of real) |",
                        f"| on the last frame copied | {p.copy_accuracy:.3f} |",
                        f"| the most frequent action | {p.chance:.3f} |",
                    ]
                )
            )
        if self.progress is not None:
            parts.append(self.progress.table())
        if self.held_actions is not None:
            parts.append(self.held_actions.table())
        if self.rallies:
            from worldsim.eval.rally import rally_table

            parts.append(rally_table(self.rallies))
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        from worldsim.eval.fidelity import finite

        values = {"fidelity": self.fidelity.to_dict()}
        for name in ("probe", "progress", "held_actions"):
            part = getattr(self, name)
            if part is not None:
                values[name] = part.to_dict()
        if self.rallies:
            values["rallies"] = [r.to_dict() for r in self.rallies]
        return finite(values)


# How scripts/train_world_model_mario.sh collects the held-out episodes (keep the two in step); the
# DQN comes from scripts/train_dqn_mario.sh. Without a trained DQN, the fallback mix below.
HELDOUT_COLLECT = (
    "worldsim collect --env mario --agent dqn --steps 6000 --seed 90000 --dataset-id {id} dqn.path=runs/dqn-mario/best.zip dqn.epsilon=0.1"
)
HELDOUT_COLLECT_WITHOUT_DQN = "worldsim collect --env mario --agent scripted:0.8,random:0.2 --steps 6000 --seed 90000 --dataset-id {id}"


def default_heldout_dataset() -> str:
    """The held-out dataset of the shipped model's training config (configs/train/mario.yaml ``data.heldout``)."""
    from worldsim.config import load_config

    return load_config("train", "mario")["data"]["heldout"]


def evaluate_heldout(
    dataset: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    horizon: int = 32,
    rollouts: int = 256,
    transitions: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    sampling_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    json_path: str | os.PathLike | None = None,
    probe: str | os.PathLike | None = None,
    agent_episodes: int = 10,
    held_action_starts: int = 3,
    adapter: str | os.PathLike | None = None,
    adapter_scale: float = 1.0,
    adapter_sigma_max: float | None = None,
) -> HeldoutEvaluation:
    """The evaluation (see the module) of ``checkpoint`` (default: the shipped model) on ``dataset``
    (default: ``default_heldout_dataset()``); ``probe``: an inverse-dynamics checkpoint (default:
    the shipped one); ``agent_episodes`` scripted episodes from seeds 30000+ and
    ``held_action_starts`` starts per held action (0: skip); ``adapter``: a LoRA adapter folder
    (``worldsim align``) merged into the checkpoint at ``adapter_scale`` for every part (at noise
    levels ``<= adapter_sigma_max`` only, when given). Written to
    ``json_path`` if given."""
    from worldsim.data.minari_io import check_dataset_id, dataset_dir, datasets_root

    heldout = default_heldout_dataset()
    dataset = dataset or heldout
    check_dataset_id(dataset)
    if dataset == heldout and not (dataset_dir(dataset) / "data").is_dir():
        # A fresh install has no datasets: say exactly how to make this one.
        raise WorldsimError(
            f"the held-out dataset {dataset!r} is not in {datasets_root()} (worldsim ships none): collect it with "
            f"`{HELDOUT_COLLECT.format(id=dataset)}` (needs the DQN of scripts/train_dqn_mario.sh; without it "
            f"`{HELDOUT_COLLECT_WITHOUT_DQN.format(id=dataset)}`), or pass --dataset ID, or set MINARI_DATASETS_PATH to where it is"
        )
    from worldsim.core.checkpoint import shipped_checkpoint as shipped
    from worldsim.data.minari_io import load_dataset
    from worldsim.data.sequences import SequenceDataset
    from worldsim.engine import load_engine_model
    from worldsim.envs.dream import shipped_checkpoint
    from worldsim.eval.fidelity import evaluate_model

    checkpoint = checkpoint or shipped_checkpoint()
    # One model and one read of the held-out episodes serve the fidelity report and the probe.
    model, _, device = load_engine_model(checkpoint, device, sampling_steps)
    if adapter is not None:
        from worldsim.models.lora import apply_adapter

        apply_adapter(model, adapter, scale=adapter_scale, sigma_max=adapter_sigma_max)
    # the dream envs of the agents' parts: the same model, loaded by the env
    dream_options = {
        "checkpoint": checkpoint,
        "device": device,
        "sampling_steps": sampling_steps,
        "adapter": adapter,
        "adapter_scale": adapter_scale,
        "adapter_sigma_max": adapter_sigma_max,
    }
    k = model.context_length
    episodes = SequenceDataset(load_dataset(dataset), k + 1, model.config.game.label_keys, pad_start=k - 1)
    report = evaluate_model(
        model, episodes, horizon=horizon, rollouts=rollouts, transitions=transitions, batch_size=batch_size, seed=seed, progress=progress
    )
    result = HeldoutEvaluation(report)
    # the shipped probe, the scripted runner and the held actions are Mario's: other games get the fidelity part (and their own parts)
    mario = model.config.game.real_env.get("id") == MARIO_REAL_ENV
    if model.config.game.agents:
        result.rallies = _rallies(model.config.game, dream_options, agent_episodes) if agent_episodes else None
    elif probe is None and mario:
        try:
            probe = shipped(SHIPPED_PROBE)
        except WorldsimError:
            probe = None  # a build without the shipped probe: the report says it has no probe part
    if probe is not None and not model.config.game.agents:
        result.probe = _probe_report(model, episodes, probe, seed, batch_size, transitions)
    if (agent_episodes or held_action_starts) and mario:
        import gymnasium as gym

        from worldsim.agents import make_agent
        from worldsim.envs import make_env
        from worldsim.eval.progress import constant_action_progress, dream_vs_real_progress

        real = make_env("mario")
        dream = gym.make("worldsim/Mario-v0", **dream_options)
        if agent_episodes:
            agent = make_agent("scripted", real)
            result.progress = dream_vs_real_progress(dream, real, agent, range(30_000, 30_000 + agent_episodes))
        if held_action_starts:
            result.held_actions = constant_action_progress(dream, real, range(31_000, 31_000 + held_action_starts))
    if json_path is not None:
        path = Path(json_path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        tmp.replace(path)
    return result


def _rallies(game, dream_options: dict, episodes: int) -> list:
    """The game's scripted players, ``episodes`` episodes from seeds 30000+ in the real game and in the
    dream (``dream_options``: the dream env's checkpoint, device, sampling steps and adapter)."""
    import gymnasium as gym

    from worldsim.agents import make_agent
    from worldsim.eval.dream_rollout import real_game_env
    from worldsim.eval.rally import rally_lengths

    real_id = game.real_env.get("id")
    if real_id not in MULTI_AGENT_GAMES:
        raise WorldsimError(f"no rally comparison for the game of {real_id!r}: pass --agent-episodes 0")
    known = MULTI_AGENT_GAMES[real_id]
    real = real_game_env(game)
    dream = gym.make(known["dream"], **dream_options)
    agent = make_agent(known["agent"], real)
    return [
        rally_lengths(real, agent, episodes, 30_000, name=f"{real_id} (real), {known['agent']}"),
        rally_lengths(dream, agent, episodes, 30_000, name=f"{known['dream']} ({dream_options['checkpoint']}), {known['agent']}"),
    ]


def _probe_report(model, episodes, probe_path, seed, batch_size, transitions):
    """The inverse-dynamics probe on the held-out episodes (``SequenceDataset`` in memory): every
    window, or ``transitions`` of them."""
    import numpy as np
    import torch

    from worldsim.data.sequences import SequenceDataset
    from worldsim.eval.fidelity import window_batches
    from worldsim.eval.inverse_dynamics import load_probe, probe_accuracy

    device = next(model.parameters()).device
    probe = load_probe(probe_path, device)
    k = model.context_length
    windows = SequenceDataset(episodes, k + probe.config.held_steps, model.config.game.label_keys, pad_start=k - 1)
    indices = np.arange(len(windows))
    if transitions is not None and transitions < len(indices):
        indices = np.sort(np.random.default_rng(seed).choice(indices, size=transitions, replace=False))
    batches = window_batches(windows, indices, model.config.game, batch_size, device)
    return probe_accuracy(model, probe, batches, torch.Generator(device).manual_seed(seed))
