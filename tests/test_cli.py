"""The worldsim command line: the commands work, and bad input gives one clear line and writes nothing."""

import subprocess
import sys

import minari
import pytest

from worldsim.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, expected):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("worldsim: error: ") and expected in lines[0], lines[0]


def test_console_script_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "worldsim.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("collect", "learn", "rollout", "dataset", "list"):
        assert command in result.stdout


def test_list_names_envs_and_agents(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("mario", "pointmaze-umaze", "worldsim/MarioReal-v0", "scripted", "dqn", "waypoint"):
        assert name in out


def test_collect_writes_a_dataset_and_prints_a_summary(capsys, minari_path):
    code, out, _ = run(capsys, "collect", "--env", "mario", "--agent", "scripted", "--steps", "150", "--quiet")
    assert code == 0
    assert "episodes" in out and "x_pos" in out
    assert minari.load_dataset("worldsim/mario-scripted-v0").total_steps == 150
    code, out, _ = run(capsys, "dataset", "worldsim/mario-scripted-v0", "--env", "mario")
    assert code == 0 and "spaces match" in out and "x_pos" in out


def test_collect_with_overrides_for_env_and_agent(capsys, minari_path):
    code, _, err = run(capsys, "collect", "--env", "mario", "--agent", "random:1,scripted:3", "--steps", "60",
                       "--dataset-id", "worldsim/mario12-mix-v3", "--quiet", "env.kwargs.level=1-2", "scripted.epsilon=0.5")
    assert code == 0, err
    dataset = minari.load_dataset("worldsim/mario12-mix-v3")
    assert dataset.spec.env_spec.kwargs["level"] == "1-2"
    assert int(dataset[0].infos["stage"][0]) == 2


def test_rollout_writes_an_mp4(capsys, tmp_path):
    video = tmp_path / "out" / "mario.mp4"
    code, out, err = run(capsys, "rollout", "--env", "mario", "--agent", "scripted", "--max-steps", "30", "--video", str(video))
    assert code == 0, err
    assert video.stat().st_size > 1000
    assert sorted(p.name for p in video.parent.iterdir()) == ["mario.mp4"]  # no temporary file left
    assert "x_pos" in out


def test_rollout_renders_pointmaze_offscreen(capsys, tmp_path):
    video = tmp_path / "maze.gif"
    code, out, err = run(capsys, "rollout", "--env", "pointmaze-umaze", "--agent", "waypoint", "--max-steps", "20", "--video", str(video))
    assert code == 0, err
    assert video.stat().st_size > 1000 and "21 frames" in out


@pytest.mark.parametrize("argv, expected", [
    (["collect", "--env", "zelda", "--agent", "random", "--steps", "10"], "unknown env 'zelda'"),
    (["collect", "--env", "mario", "--agent", "genius", "--steps", "10"], "unknown agent 'genius'"),
    (["collect", "--env", "mario", "--agent", "random", "--steps", "-3"], "--steps must be a positive"),
    (["collect", "--env", "mario", "--agent", "dqn", "--steps", "10"], "must be trained first"),
    (["collect", "--env", "mario", "--agent", "random:x", "--steps", "10"], "is not a number"),
    (["collect", "--env", "mario", "--agent", "random", "--steps", "10", "env.kwargs.levle=1-2"], "bad override"),
    (["collect", "--env", "mario", "--agent", "random", "--steps", "10", "zelda.x=1"], "not in this command"),
    (["collect", "--env", "mario", "--agent", "random", "--steps", "10", "env.kwargs.level=9-9"], "not a Super Mario Bros level"),
    (["collect", "--env", "pointmaze-umaze", "--agent", "scripted", "--steps", "10"], "needs a Mario env"),
    (["collect", "--env", "pointmaze-umaze", "--agent", "random", "--steps", "10", "env.kwargs.goal_cell=[0,0]"], "is a wall"),
    (["collect", "--env", "mario", "--agent", "dqn", "--steps", "10", "dqn.path=/nonexistent/agent.zip"], "no DQN agent at"),
    (["dataset", "worldsim/nothing-here-v0"], "no dataset 'worldsim/nothing-here-v0'"),
    (["learn", "--env", "mario", "--agent", "scripted", "--steps", "10", "--out", "x"], "does not learn"),
    (["rollout", "--env", "mario", "--agent", "random", "--video", "out.avi"], "must end in .mp4 or .gif"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(capsys, minari_path, argv, expected):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, expected)
    assert not minari_path.exists() or not any(minari_path.rglob("*.hdf5"))


def test_dataset_for_another_env_is_one_clear_line(capsys, minari_path):
    assert run(capsys, "collect", "--env", "mario", "--agent", "random", "--steps", "20", "--quiet")[0] == 0
    code, _, err = run(capsys, "dataset", "worldsim/mario-random-v0", "--env", "pointmaze-umaze")
    assert_one_line_error(code, err, "has observation space")


TINY_DQN = ["env.max_episode_steps=60", "+dqn.hyperparameters.learning_starts=50", "+dqn.hyperparameters.buffer_size=500",
            "+dqn.hyperparameters.batch_size=8"]


def test_learn_checkpoints_and_resumes_from_its_run_folder(capsys, tmp_path):
    out = tmp_path / "dqn"
    tiny = TINY_DQN
    common = ["learn", "--env", "mario", "--agent", "dqn", "--out", str(out), "--eval-every", "100", "--eval-episodes", "1", *tiny]
    code, out_text, err = run(capsys, *common, "--steps", "200")
    assert code == 0, err
    assert (out / "agent.zip").exists() and (out / "best.zip").exists() and not list(out.glob("*.tmp*"))
    assert [line.split(",")[0] for line in (out / "eval.csv").read_text().splitlines()] == ["steps", "100", "200"]

    # A run stopped after its checkpoint at 200 steps continues from there to the new total.
    code, out_text, err = run(capsys, *common, "--steps", "300")
    assert code == 0, err
    assert "resuming" in out_text and "at step 200" in out_text
    assert "trained 300 steps" in out_text
    assert (out / "eval.csv").read_text().splitlines()[-1].startswith("300,")


def test_learn_shorter_than_eval_every_still_writes_best_and_eval_csv(capsys, tmp_path):
    # The README's run folder (agent.zip, best.zip, eval.csv) after a run that never reached --eval-every.
    out = tmp_path / "dqn"
    code, out_text, err = run(capsys, "learn", "--env", "mario", "--agent", "dqn", "--steps", "120", "--out", str(out),
                              "--eval-episodes", "1", *TINY_DQN)
    assert code == 0, err
    assert (out / "agent.zip").exists() and (out / "best.zip").exists()
    assert [line.split(",")[0] for line in (out / "eval.csv").read_text().splitlines()] == ["steps", "120"]
    assert "evaluation: return_median=" in out_text and "best.zip" in out_text


def test_eval_on_a_fresh_install_gives_the_command_that_collects_its_dataset(capsys, minari_path):
    from worldsim.cli import default_heldout_dataset

    assert default_heldout_dataset() == "worldsim/mario-heldout-v0"  # configs/train/mario.yaml data.heldout
    code, _, err = run(capsys, "eval", "--device", "cpu")
    assert_one_line_error(code, err, "the held-out dataset 'worldsim/mario-heldout-v0' is not in")
    assert "`worldsim collect --env mario --agent dqn --steps 6000 --seed 90000 " \
           "--dataset-id worldsim/mario-heldout-v0 dqn.path=runs/dqn-mario/best.zip dqn.epsilon=0.1`" in err
    assert not minari_path.exists()


def test_overrides_may_follow_options(capsys):
    """KEY=VALUE overrides before and after options are all overrides: the command reaches its own
    checks (here the reward name), not argparse's "unrecognized arguments"."""
    code = main(["align", "--reward", "bogus", "--steps", "1", "--out", "unused", "aligner.lr=1e-3", "--seed", "0", "realism.path=x"])
    err = capsys.readouterr().err
    assert code == 2 and "unrecognized arguments" not in err and "bogus" in err
