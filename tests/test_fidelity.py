"""The fidelity metrics cannot flatter: a model that copies its last frame scores exactly the copy
baseline and a delta-PSNR of 0; the inverse-dynamics probe scores real, dreamed and copied frames."""

import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.config import load_config
from worldsim.data.minari_io import load_dataset
from worldsim.eval.fidelity import evaluate_model
from worldsim.models.world_model import WorldModel, WorldModelConfig

TINY = ["model.unet.block_channels=[16,16]", "model.unet.norm_groups=8", "model.end_model.channels=[8,8,8,8]", "model.end_model.hidden=16"]


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """300 real steps of random play (with deaths) as a Minari dataset."""
    with collected(tmp_path_factory, "worldsim/mario-fid-v0", "--env", "mario", "--agent", "random", "--steps", "300") as dataset_id:
        yield load_dataset(dataset_id)


def copying_model() -> WorldModel:
    """A world model whose denoiser predicts no change at all: its frames are the last frame copied."""
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig.from_dict(load_config("model", "mario", TINY))).eval()
    model.denoiser.denoise = lambda noisy, sigma, frames, actions, context_sigma=None: torch.zeros_like(noisy)
    return model


def test_a_copying_model_scores_the_copy_baseline_and_no_controllability(heldout):
    report = evaluate_model(copying_model(), heldout, horizon=8, rollouts=16, batch_size=16, progress=False)
    assert report.transitions > 250 and report.rollouts == 16
    assert report.teacher_forced_psnr == pytest.approx(report.copy_psnr, abs=1e-4)
    assert report.changed_psnr == pytest.approx(report.copy_changed_psnr, abs=1e-4)
    np.testing.assert_allclose(report.autoregressive_psnr, report.copy_autoregressive_psnr, atol=1e-4)
    np.testing.assert_allclose(report.delta_psnr, 0.0, atol=1e-6)
    # Whole frames hide how bad copying is where things move.
    assert report.copy_changed_psnr < report.copy_psnr - 5
    assert report.dream_scroll == 0.0 and report.scroll_error == pytest.approx(report.real_scroll)  # a copy never scrolls
    table = report.table()
    assert "copy last frame" in table and "death precision / recall" in table and "progress (x_pos) MAE" in table


def test_only_a_model_that_ignores_the_action_scores_zero_controllability(heldout):
    """A denoiser that draws the action into the frame (a bar whose length is the action) gives
    other frames under random actions, so its delta-PSNR is not 0 (its sign says nothing here:
    the recording has no bar)."""
    model = copying_model()

    def action_bar(noisy, sigma, frames, actions, context_sigma=None):
        change = torch.zeros_like(noisy)
        for i, action in enumerate(actions[:, -1].tolist()):
            change[i, :, :4, : 8 * (action + 1)] = 0.5
        return change

    model.denoiser.denoise = action_bar
    report = evaluate_model(model, heldout, horizon=4, rollouts=16, batch_size=16, progress=False)
    assert all(abs(value) > 0.01 for value in report.delta_psnr)


def test_the_inverse_dynamics_probe_scores_real_dreamed_and_copied_frames(heldout, tmp_path):
    from worldsim.data.sequences import SequenceDataset
    from worldsim.eval.fidelity import window_batches
    from worldsim.eval.inverse_dynamics import load_probe, probe_accuracy
    from worldsim.train.idm_training import train_inverse_dynamics

    # Random play rarely holds an action 4 steps: the tiny probe here reads 2 held steps.
    model_values = load_config(
        "model", "idm-mario", ["model.channels=[8,8,8,8]", "model.hidden=16", "model.frames=4", "model.held_steps=2"]
    )
    train_values = load_config(
        "train",
        "idm-mario",
        [
            f"train.datasets=[{heldout.id}]",
            "train.steps=200",
            "train.batch_size=16",
            "train.optimizer.warmup_steps=0",
            "train.ema_decay=0.9",
        ],
    )
    probe = load_probe(train_inverse_dynamics(model_values, train_values, tmp_path / "idm", progress=False))
    model = copying_model()
    windows = SequenceDataset(heldout, 4 + 2, model.config.game.label_keys, pad_start=3)
    report = probe_accuracy(model, probe, window_batches(windows, np.arange(len(windows)), model.config.game, 64, "cpu"))
    held = sum(int(windows[i]["actions"][-1] == windows[i]["actions"][-2]) for i in range(len(windows)))
    assert report.clips == held > 20
    assert 0 <= report.copy_accuracy <= 1 and 0 < report.chance <= 1
    assert report.dream_accuracy == report.copy_accuracy  # the copying model's frames are the copies
    assert report.real_accuracy > report.chance  # it learned the very transitions it is scored on


def test_rally_intervals_cover_the_mean_and_narrow_with_more_episodes():
    from worldsim.eval.rally import RallyLengths, mean_ratio, rally_table

    rng = np.random.default_rng(1)
    few, many = (RallyLengths("real", rng.geometric(1 / 300, n).tolist(), [True] * n) for n in (8, 128))
    for rally in (few, many):
        low, high = rally.mean_interval()
        assert low < rally.mean < high
    assert np.diff(many.mean_interval()) < 0.5 * np.diff(few.mean_interval())
    ratio, low, high = mean_ratio(many, many)
    assert ratio == 1.0 and low < 1.0 < high
    doubled = RallyLengths("dream", [2 * n for n in many.lengths], many.ended)
    assert mean_ratio(doubled, many)[0] == pytest.approx(2.0) and mean_ratio(doubled, many)[1] > 1.5
    table = rally_table([many, doubled]).splitlines()
    assert len(table) == 4 and table[2].endswith("|  |") and "2.00 [" in table[3]


def test_false_ends_are_counted_only_once_the_end_classifier_is_calibrated(heldout):
    """Before calibration (during training) a classifier's raw logits, trained with ends drawn
    many times over, are no decisions: the report says "not measured", not hundreds per 1000."""
    model = copying_model()
    assert model.end_classifier is not None
    model.end_classifier.config.decision_bias = []
    report = evaluate_model(model, heldout, horizon=4, rollouts=16, batch_size=16, progress=False)
    assert report.dreamed_steps == 0 and np.isnan(report.false_ends_per_1000_dreamed_steps)
    model.end_classifier.config.decision_bias = [0.0] * (len(model.config.game.end_classes) - 1)
    report = evaluate_model(model, heldout, horizon=4, rollouts=16, batch_size=16, progress=False)
    assert report.dreamed_steps == 16 * 4 and np.isfinite(report.false_ends_per_1000_dreamed_steps)


def test_reports_with_one_seed_are_paired_rollout_by_rollout(heldout, tmp_path):
    """Each rollout's PSNR is kept, and two reports made with one seed hold the same windows and
    noise: the table's paired difference of a model with itself is exactly 0, and a model that
    draws a bar into every frame is measured worse, with an interval that excludes 0."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from worldsim.eval.fidelity import write_json

    copying = evaluate_model(copying_model(), heldout, horizon=4, rollouts=16, batch_size=16, progress=False)
    assert np.asarray(copying.rollout_psnr).shape == (16, 4)
    np.testing.assert_allclose(np.mean(copying.rollout_psnr, axis=0), copying.autoregressive_psnr, atol=1e-3)
    barred_model = copying_model()
    barred_model.denoiser.denoise = lambda noisy, sigma, frames, actions, context_sigma=None: torch.full_like(noisy, 0.1)
    barred = evaluate_model(barred_model, heldout, horizon=4, rollouts=16, batch_size=16, progress=False)
    write_json(copying, tmp_path / "copy.json")
    write_json(barred, tmp_path / "barred.json")
    script = Path(__file__).parents[1] / "benchmarks" / "fidelity_table.py"
    table = subprocess.run(
        [
            sys.executable,
            script,
            f"copy={tmp_path / 'copy.json'}",
            f"again={tmp_path / 'copy.json'}",
            f"barred={tmp_path / 'barred.json'}",
            "--paired",
            "copy",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    again, worse = table[-2], table[-1]
    assert again.startswith("| again | +0.00 [+0.00, +0.00] / +0.00 [+0.00, +0.00] / n/a | 16 |")
    step1 = worse.split("|")[2].split("/")[0]  # "-x.xx [low, high]"
    mean, low, high = (float(v) for v in step1.replace("[", " ").replace("]", " ").replace(",", " ").split())
    assert high < 0 and low < mean < high

    # A report from another seed holds other windows: refused, in one line.
    other = evaluate_model(copying_model(), heldout, horizon=4, rollouts=16, batch_size=16, seed=1, progress=False)
    write_json(other, tmp_path / "other.json")
    refused = subprocess.run(
        [sys.executable, script, f"copy={tmp_path / 'copy.json'}", f"other={tmp_path / 'other.json'}", "--paired", "copy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "not evaluated on the same windows" in refused.stderr
    assert json.loads((tmp_path / "copy.json").read_text())["rollout_psnr"] == copying.rollout_psnr
