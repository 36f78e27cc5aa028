"""``worldsim train`` on a small real Mario dataset: losses, checkpoints, resuming, the exported model."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldsim.cli import main
from worldsim.config import load_config
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import LABEL_KEYS, model_batch
from worldsim.models.heads import DEATH, RUNNING
from worldsim.models.world_model import WorldModel, WorldModelConfig, load_world_model
from worldsim.train.trainer import train_world_model

TINY_MODEL = [
    "model.unet.block_channels=[16,16]",
    "model.unet.norm_groups=8",
    "model.unet.space_to_depth=4",
    "model.heads.channels=[8,8,8,8]",
    "model.heads.hidden=32",
]


def tiny_train(dataset_id, **changes):
    overrides = [
        f"train.data.datasets=[{dataset_id}]",
        f"train.data.heldout={dataset_id}",
        "train.batch_size=4",
        "train.eval_windows=8",
        "train.checkpoint_every=2",
        "train.eval_every=2",
        "train.sample_every=4",
        "train.start_states=4",
        "train.heads_steps=2",
        "train.heads_batch_size=4",
    ] + [f"train.{key}={value}" for key, value in changes.items()]
    return load_config("model", "mario", TINY_MODEL), load_config("train", "mario", overrides)


@pytest.fixture(scope="module")
def dataset_id(tmp_path_factory):
    """400 real steps of the scripted runner, with its deaths, as a Minari dataset."""
    path = tmp_path_factory.mktemp("minari")
    patch = pytest.MonkeyPatch()
    patch.setenv("MINARI_DATASETS_PATH", str(path))
    assert (
        main(
            [
                "collect",
                "--env",
                "mario",
                "--agent",
                "scripted",
                "--steps",
                "400",
                "--quiet",
                "--dataset-id",
                "worldsim/mario-tiny-v0",
            ]
        )
        == 0
    )
    yield "worldsim/mario-tiny-v0"
    patch.undo()


def test_model_batch_labels_follow_the_recorded_steps(dataset_id):
    windows = SequenceDataset(load_dataset(dataset_id), 6, LABEL_KEYS, pad_start=3)
    ends = np.flatnonzero(windows.target_ends())
    assert len(ends) > 0  # the scripted runner dies within 400 steps
    batch = model_batch({key: torch.stack([windows[int(i)][key] for i in ends[:2]]) for key in windows[0]})
    assert batch["frames"].shape == (2, 6, 3, 64, 64) and batch["frames"].min() >= -1
    assert (batch["end_class"][:, -1] == DEATH).all() and (batch["end_class"][:, :-1] == RUNNING).all()
    x_pos = torch.stack([windows[int(i)]["x_pos"] for i in ends[:2]]).float()
    torch.testing.assert_close(batch["x_delta"][:, 1:], x_pos[:, 1:] - x_pos[:, :-1])
    # A window padded before an episode's start repeats its first frame with action 0.
    first = windows[0]
    assert torch.equal(first["frames"][0], first["frames"][3]) and first["actions"][:4].tolist() == [0, 0, 0, 0]


def test_training_forward_unrolls_and_every_loss_learns(dataset_id):
    torch.manual_seed(0)
    model_values, _ = tiny_train(dataset_id)
    model = WorldModel(WorldModelConfig.from_dict(model_values))
    windows = SequenceDataset(load_dataset(dataset_id), 6, LABEL_KEYS, pad_start=3)
    batch = model_batch({key: torch.stack([windows[i][key] for i in range(0, 64, 4)]) for key in windows[0]})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        losses = model(**batch)
        assert set(losses) == {"denoiser", "reward", "x_delta", "end"}
        if first is None:
            first = {k: v.item() for k, v in losses.items()}
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, value in losses.items():
        assert value.item() < first[name], name


def test_train_writes_checkpoints_resumes_and_exports_a_dream_env(dataset_id, tmp_path):
    out = tmp_path / "run"
    model_values, train_values = tiny_train(dataset_id, steps=3)
    path = train_world_model(model_values, train_values, out, command="worldsim train (test)", progress=False)
    assert path == out / "model"
    state = json.loads((out / "checkpoint" / "training.json").read_text())
    assert state["step"] == 3 and state["elapsed_seconds"] > 0
    with (out / "curve.csv").open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [2, 3]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000003.mp4"]
    assert json.loads((out / "heads_checkpoint" / "training.json").read_text())["step"] == 2
    assert "Heads fine-tuning: 2 steps of batch 4" in (out / "model" / "README.md").read_text()

    # Running again with more steps resumes at step 3 and continues to 5.
    _, more = tiny_train(dataset_id, steps=5)
    train_world_model(model_values, more, out, progress=False)
    assert json.loads((out / "checkpoint" / "training.json").read_text())["step"] == 5
    with (out / "curve.csv").open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [2, 3, 4, 5]

    _, starts, _ = load_world_model(out / "model")
    assert starts.frames.shape[1:] == (4, 64, 64, 3) and (starts.x_pos > 0).all()
    assert "worldsim train (test)" not in (out / "model" / "README.md").read_text()  # the resumed run's command
    env = gym.make("worldsim/Mario-v0", checkpoint=out / "model")
    observation, _ = env.reset(seed=0)
    assert env.step(1)[0].shape == observation.shape == (64, 64, 3)
    env.close()

    # A changed architecture cannot resume into the same folder.
    other_model = load_config("model", "mario", [*TINY_MODEL, "model.unet.block_channels=[8,16]"])
    with pytest.raises(Exception, match="another model config"):
        train_world_model(other_model, more | {"steps": 6}, out, progress=False)


def test_train_command_line_rejects_bad_overrides(capsys):
    assert main(["train", "--out", "/tmp/unused", "steps=3"]) == 2
    assert "model.unet.space_to_depth=2 or train.steps=100" in capsys.readouterr().err
