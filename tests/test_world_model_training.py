"""``worldsim train`` on a small real Mario dataset: losses, checkpoints, resuming, the exported model."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.cli import main
from worldsim.config import load_config
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.errors import WorldsimError
from worldsim.models.end_classifier import best_f1_bias
from worldsim.models.world_model import WorldModel, WorldModelConfig, load_world_model
from worldsim.train.world_model_training import (
    DenoiserObjective,
    EndClassifierObjective,
    EndModelObjective,
    start_states,
    train_world_model,
)

torch.set_num_threads(1)

TINY_MODEL = [
    "model.unet.block_channels=[16,16]",
    "model.unet.norm_groups=8",
    "model.unet.space_to_depth=4",
    "model.end_model.channels=[8,8,8,8]",
    "model.end_model.hidden=32",
    "model.end_classifier.channels=[8,8,8]",
    "model.end_classifier.hidden=16",
]
DEATH, RUNNING = 1, 0


def tiny_train(dataset_id, denoiser_steps=3, end_model_steps=2, end_classifier_steps=2, **changes):
    overrides = [
        f"train.data.datasets=[{dataset_id}]",
        f"train.data.heldout={dataset_id}",
        "train.start_states=4",
        f"train.denoiser.steps={denoiser_steps}",
        "train.denoiser.batch_size=4",
        "train.denoiser.checkpoint_every=2",
        "train.denoiser.eval_every=2",
        f"train.end_model.steps={end_model_steps}",
        "train.end_model.batch_size=4",
        "train.end_model.checkpoint_every=2",
        f"train.end_classifier.steps={end_classifier_steps}",
        "train.end_classifier.batch_size=4",
        "train.end_classifier.checkpoint_every=2",
        "train.end_classifier.validation_every=2",
        "train.end_classifier.min_validation_ends=1",
    ] + [f"train.{key}={value}" for key, value in changes.items()]
    return load_config("model", "mario", TINY_MODEL), load_config("train", "mario", overrides)


@pytest.fixture(scope="module")
def dataset_id(tmp_path_factory):
    """400 real steps of the scripted runner, with its deaths, as a Minari dataset."""
    with collected(tmp_path_factory, "worldsim/mario-tiny-v0", "--env", "mario", "--agent", "scripted", "--steps", "400") as dataset_id:
        yield dataset_id


def test_model_batch_labels_follow_the_recorded_steps(dataset_id):
    game = WorldModelConfig.from_dict(load_config("model", "mario")).game
    windows = SequenceDataset(load_dataset(dataset_id), 6, game.label_keys, pad_start=3)
    ends = np.flatnonzero(windows.target_ends())
    assert len(ends) > 0  # the scripted runner dies within 400 steps
    batch = model_batch(stack_windows([windows[int(i)] for i in ends[:2]]), game)
    assert batch["frames"].shape == (2, 6, 3, 64, 64) and batch["frames"].min() >= -1
    assert (batch["end_class"][:, -1] == DEATH).all() and (batch["end_class"][:, :-1] == RUNNING).all()
    x_pos = torch.stack([windows[int(i)]["x_pos"] for i in ends[:2]]).float()
    torch.testing.assert_close(batch["progress"][:, 1:], x_pos[:, 1:] - x_pos[:, :-1])
    # A window padded before an episode's start repeats its first frame with action 0.
    first = windows[0]
    assert torch.equal(first["frames"][0], first["frames"][3]) and first["actions"][:4].tolist() == [0, 0, 0, 0]


def test_both_objectives_unroll_burn_in_and_every_loss_learns(dataset_id):
    torch.manual_seed(0)
    model_values, _ = tiny_train(dataset_id)
    model = WorldModel(WorldModelConfig.from_dict(model_values))
    game = model.config.game
    windows = SequenceDataset(load_dataset(dataset_id), 8, game.label_keys, pad_start=3)
    ends = np.flatnonzero(windows.target_ends())
    batch = model_batch(stack_windows([windows[int(i)] for i in [*range(0, 60, 4), *ends[:2]]]), game)
    classifier_batch = dict(batch, frames=batch["frames"][:, -5:], actions=batch["actions"][:, -5:], end_class=batch["end_class"][:, -5:])
    for objective, names, inputs in (
        (DenoiserObjective(model), {"denoiser"}, batch),
        (EndModelObjective(model), {"reward", "progress", "end"}, batch),
        (EndClassifierObjective(model, generated_fraction=0.5), {"end"}, classifier_batch),
    ):
        parts = ("denoiser", "end_model", "end_classifier")
        assert {name for name, _ in objective.named_parameters()} <= {
            f"{part}.{name}" for part in parts for name, _ in getattr(model, part).named_parameters()
        }
        optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-3)
        first = None
        for _ in range(30):
            losses = objective(**inputs)
            assert set(losses) == names
            if first is None:
                first = {k: v.item() for k, v in losses.items()}
            sum(losses.values()).backward()
            optimizer.step()
            optimizer.zero_grad()
        for name, value in losses.items():
            assert value.item() < first[name], name


def test_train_writes_checkpoints_resumes_and_exports_a_dream_env(dataset_id, tmp_path):
    from worldsim.eval.fidelity import heldout_curve

    out = tmp_path / "run"
    model_values, train_values = tiny_train(dataset_id, phases="[end_model]")
    # One phase alone writes its checkpoint, not the model.
    assert train_world_model(model_values, train_values, out, progress=False) is None
    assert json.loads((out / "end_model" / "training.json").read_text())["step"] == 2 and not (out / "model").exists()
    _, train_values = tiny_train(dataset_id)
    path = train_world_model(
        model_values, train_values, out, command="worldsim train (test)", progress=False, heldout_evaluator=heldout_curve
    )
    assert path == out / "model"
    state = json.loads((out / "denoiser" / "training.json").read_text())
    assert state["step"] == 3 and state["elapsed_seconds"] > 0
    with (out / "curve.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [2, 3]
    assert float(rows[0]["copy_psnr"]) > 0 and rows[0]["delta_psnr_8"] != ""
    assert "End model: 2 steps of batch 4" in (out / "model" / "README.md").read_text()

    # Running again with more steps resumes at step 3 and continues to 5.
    _, more = tiny_train(dataset_id, denoiser_steps=5)
    train_world_model(model_values, more, out, progress=False, heldout_evaluator=heldout_curve)
    assert json.loads((out / "denoiser" / "training.json").read_text())["step"] == 5
    with (out / "curve.csv").open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [2, 3, 4, 5]

    _, starts, _ = load_world_model(out / "model")
    assert starts.frames.shape[1:] == (4, 64, 64, 3) and (starts.progress > 0).all()
    assert "worldsim train (test)" not in (out / "model" / "README.md").read_text()  # the resumed run's command
    env = gym.make("worldsim/Mario-v0", checkpoint=out / "model")
    observation, _ = env.reset(seed=0)
    assert env.step(1)[0].shape == observation.shape == (64, 64, 3)
    env.close()

    # A changed architecture cannot resume into the same folder.
    other_model = load_config("model", "mario", [*TINY_MODEL, "model.unet.block_channels=[8,16]"])
    with pytest.raises(Exception, match="another config"):
        train_world_model(other_model, more, out, progress=False)
    # ...but its end model still fits: each phase's checkpoint keeps only the config it depends on.
    _, end_only = tiny_train(dataset_id, denoiser_steps=5, phases="[end_model]")
    assert train_world_model(other_model, end_only, out, progress=False) is None


def test_the_context_blur_starts_at_its_step(dataset_id, tmp_path, monkeypatch):
    model_values, _ = tiny_train(dataset_id)
    model_values["edm"]["context_blur_max"] = 2.0
    model = WorldModel(WorldModelConfig.from_dict(model_values))
    windows = SequenceDataset(load_dataset(dataset_id), 6, model.config.game.label_keys, pad_start=3)
    batch = model_batch(stack_windows([windows[i] for i in range(0, 40, 5)]), model.config.game)
    objective = DenoiserObjective(model, context_blur_from_step=3)
    assert objective._context_blur_max == 0.0  # before any step: sharp, as at step 0

    def loss_at(step, blur_max=None):
        objective.on_step(step)
        torch.manual_seed(0)
        with torch.no_grad():
            if blur_max is None:
                return objective(**batch)["denoiser"].item()
            unblurred = model.denoiser.loss  # the same loss with the blur set by hand
            monkeypatch.setattr(model.denoiser, "loss", lambda *a, **k: unblurred(*a, **{**k, "context_blur_max": blur_max}))
            value = objective(**batch)["denoiser"].item()
            monkeypatch.undo()
            return value

    assert loss_at(2) == loss_at(2, blur_max=0.0) != loss_at(3)  # steps 0-2 sharp contexts, then blurred
    assert loss_at(3) == loss_at(3, blur_max=2.0)

    # The loop tells the objective each step it takes, also after a resume.
    told = []
    monkeypatch.setattr(DenoiserObjective, "on_step", lambda self, step: told.append(step))
    for steps in (2, 4):
        _, train_values = tiny_train(dataset_id, denoiser_steps=steps, phases="[denoiser]", **{"denoiser.context_blur_from_step": 3})
        train_world_model(model_values, train_values, tmp_path, progress=False)
    assert told == [0, 1, 2, 3]


def test_start_states_end_at_the_asked_step_with_the_recorded_actions(dataset_id):
    windows = SequenceDataset([load_dataset(dataset_id)], 4, [], pad_start=3)
    every = len(windows.episodes)  # all of them, in order: start state 0 is episode 0
    reset = start_states(windows, every, seed=0, progress_label=None)
    moving = start_states(windows, every, seed=0, progress_label=None, step=5)
    episode = windows.episodes[0]
    # step 0: what a real reset shows, the first frame held K times with no action before it
    assert np.array_equal(reset.frames[0], np.repeat(episode.frames[:1], 4, axis=0)) and not reset.actions.any()
    # step 5: the real frames 2..5 and the actions that produced them
    assert np.array_equal(moving.frames[0], episode.frames[2:6]) and np.array_equal(moving.actions[0], episode.actions[2:6])
    # step 1: padded as the training windows are, the first frame repeated with action 0
    early = start_states(windows, every, seed=0, progress_label=None, step=1)
    assert np.array_equal(early.frames[0], episode.frames[[0, 0, 0, 1]])
    assert np.array_equal(early.actions[0], [0, 0, 0, episode.actions[1]])


def test_a_negative_start_state_step_is_refused_before_training(dataset_id, tmp_path):
    model, train = tiny_train(dataset_id, start_state_step=-1)
    with pytest.raises(WorldsimError, match="train.start_state_step is -1"):
        train_world_model(model, train, tmp_path, progress=False)


def test_train_command_line_rejects_bad_overrides(capsys):
    assert main(["train", "--out", "/tmp/unused", "steps=3"]) == 2
    assert "model.unet.space_to_depth=2 or train.steps=100" in capsys.readouterr().err


def test_the_classifier_objective_judges_dream_frames_in_the_generated_fraction(dataset_id):
    from worldsim.train.world_model_training import with_generated_last_frames

    model_values, _ = tiny_train(dataset_id)
    model = WorldModel(WorldModelConfig.from_dict(model_values))
    game = model.config.game
    windows = SequenceDataset(load_dataset(dataset_id), 5, game.label_keys, pad_start=3)
    batch = model_batch(stack_windows([windows[i] for i in range(0, 40, 5)]), game)
    mixed = with_generated_last_frames(model, batch["frames"], batch["actions"], 3, torch.Generator().manual_seed(0))
    assert torch.equal(mixed[:, :4], batch["frames"][:, :4]) and torch.equal(mixed[3:], batch["frames"][3:])
    expected = model.sampler.sample(
        model.denoiser.eval(), batch["frames"][:3, :4], batch["actions"][:3, 1:], generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(mixed[:3, 4], expected)
    assert not torch.equal(mixed[:3, 4], batch["frames"][:3, 4])


def test_best_f1_bias_separates_the_ends_it_is_given():
    rng = np.random.default_rng(0)
    margins = np.concatenate([rng.normal(-6, 1, 1000), rng.normal(-2, 0.5, 20)])  # running steps, then ends
    is_end = np.arange(1020) >= 1000
    bias, f1, precision, recall = best_f1_bias(margins, is_end)
    assert 2.5 < bias < 4.5 and f1 > 0.9 and precision > 0.9 and recall > 0.9
    assert np.isnan(best_f1_bias(margins, np.zeros(1020, bool))[1])  # no end: nothing to choose on


def test_the_end_classifier_decides_the_dream_ends_from_the_last_frames(dataset_id):
    torch.manual_seed(0)
    model_values, _ = tiny_train(dataset_id)
    model = WorldModel(WorldModelConfig.from_dict(model_values)).eval()
    model.config.end_classifier.decision_bias = [1.5, -2.0]
    frames, actions = torch.rand(3, 4, 3, 64, 64) * 2 - 1, torch.randint(7, (3, 4))
    next_frame, outputs, _ = model.predict_step(frames, actions, generator=torch.Generator().manual_seed(0))
    window = torch.cat([frames, next_frame[:, None]], dim=1)  # the 4 context frames and the step's frame
    model.config.end_classifier.decision_bias = []
    raw = model.end_classifier(window, actions[:, -1])
    torch.testing.assert_close(outputs["end"], raw + torch.tensor([0.0, 1.5, -2.0]))
    assert set(outputs) == {"reward", "progress", "end"}
    with pytest.raises(Exception, match="end_classifier.frames is 6"):
        WorldModelConfig.from_dict({**model_values, "end_classifier": {**model_values["end_classifier"], "frames": 6}})


def test_a_phase_trains_onto_a_base_model_and_keeps_its_other_weights(dataset_id, tmp_path):
    model_values, train_values = tiny_train(dataset_id)
    base = train_world_model(model_values, train_values, tmp_path / "base", progress=False)
    _, only_classifier = tiny_train(dataset_id, end_classifier_steps=4, phases="[end_classifier]", base_model=base)
    path = train_world_model(model_values, only_classifier, tmp_path / "added", progress=False)
    assert path is not None and not (tmp_path / "added" / "denoiser").exists()
    base_model, _, _ = load_world_model(base)
    added, _, checkpoint = load_world_model(path)
    for part in ("denoiser", "end_model"):
        for (name, kept), (_, original) in zip(
            getattr(added, part).state_dict().items(), getattr(base_model, part).state_dict().items(), strict=True
        ):
            assert torch.equal(kept, original), f"{part}.{name}"
    assert not torch.equal(added.end_classifier.head[-1].weight, base_model.end_classifier.head[-1].weight)
    # The decision bias was chosen on the held-out episodes and travels in config.json.
    assert len(checkpoint.config["model"]["end_classifier"]["decision_bias"]) == 2
    card = (path / "README.md").read_text()
    assert f"Denoiser: the weights of `{base}`" in card and "End classifier: 4 steps of batch 4" in card and "decision bias" in card
    # Without a trained denoiser the classifier has no dream frames to learn from: one error, unless told to use real frames only.
    with pytest.raises(Exception, match="no trained denoiser is here"):
        train_world_model(model_values, tiny_train(dataset_id, phases="[end_classifier]")[1], tmp_path / "alone", progress=False)
    _, real_only = tiny_train(dataset_id, phases="[end_classifier]", **{"end_classifier.generated_fraction": 0})
    assert train_world_model(model_values, real_only, tmp_path / "alone", progress=False) is None  # the other phases are missing
    # A base model of another denoiser cannot lend its weights to this one.
    other = load_config("model", "mario", [*TINY_MODEL, "model.unet.block_channels=[8,16]"])
    with pytest.raises(Exception, match="has no denoiser of this model's config"):
        train_world_model(other, only_classifier, tmp_path / "other", progress=False)


def test_a_mixture_denoiser_trains_saves_and_dreams(dataset_id, tmp_path):
    model_values, train_values = tiny_train(dataset_id)
    model_values = {**model_values, "unet": {**model_values["unet"], "mixture_candidates": 5}}  # EDM's estimate + 4 frames
    path = train_world_model(model_values, train_values, tmp_path / "mixture", progress=False)
    model, _, _ = load_world_model(path)
    assert model.denoiser.network.config.mixture_candidates == 5
    frames, actions = torch.rand(2, 4, 3, 64, 64) * 2 - 1, torch.randint(7, (2, 4))
    next_frame, _, _ = model.predict_step(frames, actions, generator=torch.Generator().manual_seed(0))
    assert next_frame.shape == (2, 3, 64, 64) and next_frame.abs().max() <= 1
    with pytest.raises(WorldsimError, match="mixture_candidates is 3"):
        WorldModelConfig.from_dict({**model_values, "unet": {**model_values["unet"], "mixture_candidates": 3}})
