"""Checkpoint folders: exact round trips (weights and optimizer), atomic replacement, clear errors, no pickle."""

import json
import pickle

import pytest
import torch

from worldsim.errors import WorldsimError
from worldsim.train.checkpoint import load_checkpoint, load_weights, save_checkpoint


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
    with pytest.raises(WorldsimError, match="corrupted"):
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
