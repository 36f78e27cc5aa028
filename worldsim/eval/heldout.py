"""``worldsim eval``: a world model's fidelity on held-out real episodes, by default the held-out
dataset of the shipped model's training config, with the command that collects it when missing."""

from __future__ import annotations

import os
from pathlib import Path

from worldsim.errors import WorldsimError

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
):
    """The fidelity report (``worldsim.eval.fidelity``) of ``checkpoint`` (default: the shipped model)
    on ``dataset`` (default: ``default_heldout_dataset()``), also written to ``json_path`` if given."""
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
    from worldsim.engine import resolve_device
    from worldsim.envs.dream import shipped_checkpoint
    from worldsim.eval.fidelity import evaluate_fidelity, write_json

    report = evaluate_fidelity(
        checkpoint or shipped_checkpoint(),
        dataset,
        horizon=horizon,
        rollouts=rollouts,
        transitions=transitions,
        batch_size=batch_size,
        device=resolve_device(device),
        sampling_steps=sampling_steps,
        seed=seed,
        progress=progress,
    )
    if json_path is not None:
        write_json(report, Path(json_path))
    return report
