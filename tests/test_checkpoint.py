"""Checkpoint folders: exact round trips (weights and optimizer), atomic replacement, clear errors, no pickle."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from worldsim.cli import main
from worldsim.core.checkpoint import load_checkpoint, load_weights, save_checkpoint, shipped_checkpoint
from worldsim.errors import WorldsimError


def model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    return model, optimizer


def train_steps(model, optimizer, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=generator)
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()


def test_round_trip_resumes_training_exactly(tmp_path):
    model, optimizer = model_and_optimizer()
    train_steps(model, optimizer, 5, seed=1)
    save_checkpoint(tmp_path / "ckpt", model, {"arch": "mlp"}, optimizer=optimizer, training_state={"step": 5},
                    files={"README.md": "# card", "start_states.npz": b"\x00\x01"})

    checkpoint = load_checkpoint(tmp_path / "ckpt")
    assert checkpoint.config["arch"] == "mlp" and checkpoint.training_state == {"step": 5}
    assert (tmp_path / "ckpt" / "README.md").read_text() == "# card"
    resumed, resumed_optimizer = model_and_optimizer(seed=99)
    load_weights(resumed, checkpoint)
    resumed_optimizer.load_state_dict(checkpoint.optimizer_state)

    train_steps(model, optimizer, 3, seed=2)
    train_steps(resumed, resumed_optimizer, 3, seed=2)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_saving_replaces_atomically_and_leaves_nothing_behind(tmp_path):
    model, _ = model_and_optimizer()
    save_checkpoint(tmp_path / "ckpt", model, {"version": 1})
    save_checkpoint(tmp_path / "ckpt", model, {"version": 2})
    assert load_checkpoint(tmp_path / "ckpt").config["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    with pytest.raises(TypeError):  # a config that cannot be written fails the save...
        save_checkpoint(tmp_path / "ckpt", model, {"version": 3, "bad": object()})
    assert load_checkpoint(tmp_path / "ckpt").config["version"] == 2  # ...and the old one stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, optimizer = model_and_optimizer()
    train_steps(model, optimizer, 2, seed=0)
    save_checkpoint(tmp_path / "ckpt", model, {}, optimizer=optimizer, training_state={"step": 2})

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_checkpoint(tmp_path / "ckpt").optimizer_state["state"]


def test_missing_corrupted_foreign_and_mismatched_checkpoints_are_clear_errors(tmp_path):
    model, _ = model_and_optimizer()
    with pytest.raises(WorldsimError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nowhere")

    save_checkpoint(tmp_path / "ckpt", model, {})
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(WorldsimError, match="model.safetensors is damaged"):
        load_checkpoint(tmp_path / "ckpt")
    weights.unlink()
    with pytest.raises(WorldsimError, match="has no model.safetensors"):
        load_checkpoint(tmp_path / "ckpt")

    save_checkpoint(tmp_path / "ckpt", model, {})
    config = tmp_path / "ckpt" / "config.json"
    config.write_text("{not json")
    with pytest.raises(WorldsimError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")
    config.write_text(json.dumps({"arch": "something else"}))
    with pytest.raises(WorldsimError, match="not a worldsim checkpoint"):
        load_checkpoint(tmp_path / "ckpt")

    save_checkpoint(tmp_path / "ckpt", model, {})
    other = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
    with pytest.raises(WorldsimError, match="does not fit this model"):
        load_weights(other, load_checkpoint(tmp_path / "ckpt"))


def overwrite_middle(file, size, seed=0):
    """Overwrite ``size`` bytes in the middle of ``file`` with random bytes, as a bad copy or disk would."""
    data = bytearray(file.read_bytes())
    start = len(data) // 2 - size // 2
    data[start : start + size] = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    file.write_bytes(bytes(data))


def test_damaged_copy_of_a_shipped_checkpoint_is_one_clear_error(tmp_path, capsys):
    copy = tmp_path / "df-umaze-v0"
    shutil.copytree(shipped_checkpoint("df-umaze-v0"), copy)
    load_checkpoint(copy)  # the intact copy loads
    overwrite_middle(copy / "model.safetensors", 200_000)  # the safetensors header stays valid
    with pytest.raises(WorldsimError, match=r"model.safetensors is damaged .*copy the checkpoint again, or train it again"):
        load_checkpoint(copy)
    # The same through the command line: one line naming the damaged file.
    assert main(["bench", "maze", "--methods", "df", "--episodes", "1", "--planner", str(copy), "--out", str(tmp_path / "bench")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("worldsim: error: ") and "model.safetensors is damaged" in lines[0]
    assert not (tmp_path / "bench").exists() or not any((tmp_path / "bench").iterdir())


@pytest.mark.parametrize("name", ["df-umaze-v0", "df-medium-v0", "df-large-v0", "mario-v0"])
def test_shipped_checkpoints_record_and_pass_their_checksums(name):
    config = json.loads((shipped_checkpoint(name) / "config.json").read_text())
    assert "model.safetensors" in config["checksums"]
    assert "checksums" not in load_checkpoint(shipped_checkpoint(name)).config  # verified, then dropped


def test_checksums_cover_training_state_and_binary_extras(tmp_path):
    model, optimizer = model_and_optimizer()
    save_checkpoint(tmp_path / "ckpt", model, {"arch": "mlp"}, optimizer=optimizer, training_state={"step": 0},
                    files={"start_states.npz": b"\x00" * 64, "README.md": "# card"})
    recorded = json.loads((tmp_path / "ckpt" / "config.json").read_text())["checksums"]
    assert sorted(recorded) == ["model.safetensors", "start_states.npz", "training.safetensors"]
    assert load_checkpoint(tmp_path / "ckpt").config == {"format": "worldsim-checkpoint", "format_version": 1, "arch": "mlp"}
    (tmp_path / "ckpt" / "README.md").write_text("# edited card")  # text files may be edited
    load_checkpoint(tmp_path / "ckpt")
    overwrite_middle(tmp_path / "ckpt" / "training.safetensors", 16)
    with pytest.raises(WorldsimError, match="training.safetensors is damaged"):
        load_checkpoint(tmp_path / "ckpt")


def test_checkpoint_saved_before_checksums_loads_as_before(tmp_path):
    model, _ = model_and_optimizer()
    save_checkpoint(tmp_path / "ckpt", model, {"arch": "mlp"})
    config = tmp_path / "ckpt" / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "checksums"}))
    assert load_checkpoint(tmp_path / "ckpt").config["arch"] == "mlp"
