"""``worldsim dream``, ``play`` and ``eval`` on the shipped model, end to end."""

import json

import numpy as np
import pytest

from worldsim.cli import main
from worldsim.data.minari_io import load_dataset
from worldsim.eval.dream_rollout import dream_rollout


def test_dream_writes_a_side_by_side_video_beside_the_real_game(tmp_path, capsys):
    video = tmp_path / "dream.mp4"
    assert (
        main(
            [
                "dream",
                "--agent",
                "scripted",
                "--steps",
                "6",
                "--compare",
                "--video",
                str(video),
                "--scale",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "real game under the same actions" in out and video.stat().st_size > 0


def test_compare_starts_the_dream_from_the_real_first_frame():
    import gymnasium as gym

    dream, real = gym.make("worldsim/Mario-v0"), gym.make("worldsim/MarioReal-v0")
    result = dream_rollout(dream, actions=[1, 1, 3], seed=4, real=real)
    np.testing.assert_array_equal(result.dream_frames[0], result.real_frames[0])
    assert len(result.dream_frames) == len(result.real_frames) == 4 and result.actions == [1, 1, 3]
    dream.close()
    real.close()


def test_dream_compares_a_game_of_two_agents_with_its_real_game(tmp_path, capsys):
    """Cooperative Pong's joint action (one per paddle) goes through ``worldsim dream --compare``."""
    from worldsim.core.checkpoint import shipped_checkpoint

    pong = str(shipped_checkpoint("coop-pong-v3"))
    video = tmp_path / "pong.mp4"
    argv = ["dream", "--checkpoint", pong, "--agent", "scripted-pong", "--steps", "3", "--compare", "--video", str(video), "--scale", "1"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "real game under the same actions" in capsys.readouterr().out and video.stat().st_size > 0
    assert main(["dream", "--checkpoint", pong, "--actions", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "one action per agent" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dream", "--actions", "1,9"], "must be numbers in 0..6"),
        (["dream", "--actions", "right"], "comma-separated"),
        (["dream", "--steps", "0"], "--steps must be positive"),
        (["dream", "--checkpoint", "/nonexistent"], "no checkpoint"),
        (["dream", "--video", "out.avi"], ".mp4"),
    ],
)
def test_bad_dream_arguments_give_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_play_runs_headless_for_a_few_steps():
    pytest.importorskip("pygame")
    assert main(["play", "--max-steps", "3", "--scale", "1"]) == 0


def test_eval_reports_fidelity_on_real_episodes(tmp_path, minari_path, capsys):
    collect = ["collect", "--env", "mario", "--agent", "scripted", "--steps", "120", "--quiet"]
    assert main([*collect, "--dataset-id", "worldsim/mario-eval-v0"]) == 0
    report_file = tmp_path / "fidelity.json"
    argv = [
        "eval",
        "--dataset",
        "worldsim/mario-eval-v0",
        "--transitions",
        "24",
        "--rollouts",
        "3",
        "--horizon",
        "4",
        "--agent-episodes",
        "1",
        "--held-action-starts",
        "1",
        "--quiet",
        "--json",
        str(report_file),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "next-frame PSNR, teacher-forced" in out and "copy last frame" in out
    assert "on dreamed frames" in out and "dream, same actions" in out and "action held 20 steps" in out
    report = json.loads(report_file.read_text())
    fidelity = report["fidelity"]
    ends = int(sum(ep.terminations.sum() for ep in load_dataset("worldsim/mario-eval-v0").iterate_episodes()))
    assert fidelity["transitions"] == max(24, ends) and fidelity["rollouts"] == 3 and len(fidelity["autoregressive_psnr"]) == 4
    assert 0 <= report["probe"]["dream_accuracy"] <= 1 and report["probe"]["clips"] <= 24
    assert len(report["progress"]["seeds"]) == 1 and len(report["held_actions"]["actions"]) == 7
    assert 0 < fidelity["teacher_forced_psnr"] < 100 and 0 < fidelity["teacher_forced_ssim"] <= 1


def test_any_agent_plays_the_dream_through_its_env_config(capsys):
    assert main(["rollout", "--env", "mario-dream", "--agent", "random", "--max-steps", "3"]) == 0
    assert "episode 0 (seed 0)" in capsys.readouterr().out


def test_dream_reports_the_frames_its_video_holds(tmp_path, capsys):
    import re

    import cv2

    # 30 steps give 31 frames, of which moviepy's mp4 writer keeps 30: the line must say 30.
    video = tmp_path / "dream.mp4"
    actions = ",".join(["1", "3"] * 15)  # a fixed list plays its length at most
    assert main(["dream", "--actions", actions, "--steps", "30", "--video", str(video), "--scale", "1", "--device", "cpu"]) == 0
    reported = int(re.search(r"wrote (\d+) frames to ", capsys.readouterr().out).group(1))
    capture, held = cv2.VideoCapture(str(video)), 0
    while capture.read()[0]:
        held += 1
    capture.release()
    assert reported == held
