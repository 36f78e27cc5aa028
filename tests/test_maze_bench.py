"""``worldsim bench maze`` on the real PointMaze: protocol, scores, bad input."""

import json

import numpy as np
import pytest
from worldsim.agents.df_planner import shipped_planner

from worldsim.cli import main
from worldsim.eval import maze_bench


def test_oracle_and_random_on_the_d4rl_protocol(tmp_path, capsys):
    argv = ["bench", "maze", "--maze", "umaze", "--methods", "waypoint", "random", "--episodes", "3", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    results = {(r["task"], r["method"]): r for r in json.loads((tmp_path / "results.json").read_text())}
    assert set(results) == {(t, m) for t in ("single", "multi") for m in ("waypoint", "random")}
    oracle = results["single", "waypoint"]
    assert oracle["success_rate"] == 1.0 and oracle["steps_to_reach_median"] < 300
    # Reaching early and staying: the oracle's sparse return beats D4RL's expert reference.
    assert oracle["normalized_score_mean"] > 100
    assert results["single", "random"]["normalized_score_mean"] < oracle["normalized_score_mean"]
    assert "| umaze | single | waypoint | 100% |" in (tmp_path / "results.md").read_text()
    # Strict JSON (no bare NaN), and one picture per task with every method's episode 0.
    json.loads((tmp_path / "results.json").read_text(), parse_constant=reject_constant)
    for task in ("single", "multi"):
        assert (tmp_path / f"umaze-{task}-episode0.png").stat().st_size > 0


def reject_constant(name):
    raise AssertionError(f"{name} is not JSON")


def test_results_json_writes_null_for_nan_and_is_strict_json():
    never = maze_bench.MazeResult("random", "umaze", "single", 2, 0.0, float("nan"), 0.0, -17.3, 0.0, replan_ms_single=float("inf"))
    text = maze_bench.results_json([never])
    (parsed,) = json.loads(text, parse_constant=reject_constant)
    assert parsed["steps_to_reach_median"] is None and parsed["replan_ms_single"] is None
    assert parsed["normalized_score_mean"] == -17.3


def test_episode_picture_draws_every_method_with_a_legend(tmp_path):
    import cv2

    goal = np.array([1.0, 1.0])
    paths = {"df": np.array([[-1.0, -1.0], [0.0, -1.0]]), "waypoint": np.array([[-1.0, -1.0], [-1.0, 0.0]])}
    maze_bench.draw_episode("umaze", paths, [np.zeros((4, 2))], goal, tmp_path / "both.png", plans_label="df plans")
    maze_bench.draw_episode("umaze", paths["df"], [], goal, tmp_path / "one.png")
    both, one = cv2.imread(str(tmp_path / "both.png")), cv2.imread(str(tmp_path / "one.png"))
    assert both.shape[1] == one.shape[1] == 5 * 48 and both.shape[0] > one.shape[0] > 5 * 48  # a legend strip, taller with more entries
    orange = np.array([20, 140, 240])  # the second method's colour, BGR
    assert (np.abs(both[: 5 * 48].astype(int) - orange).sum(axis=2) < 30).any()  # the waypoint path is drawn


def test_same_seeds_give_the_same_episodes():
    policy = lambda observations, restart: np.zeros((len(observations), 2), np.float32)
    first = maze_bench.run_policy("still", "umaze", "multi", policy, 2, seed=5, progress=False)
    again = maze_bench.run_policy("still", "umaze", "multi", policy, 2, seed=5, progress=False)
    np.testing.assert_array_equal(first.paths[1], again.paths[1])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "maze", "--methods", "df", "--planner", "no/such/planner"], "no/such/planner"),
        (["bench", "maze", "--maze", "medium", "--methods", "df", "--planner", str(shipped_planner("umaze"))], "trained on the umaze maze"),
        (["bench", "maze", "--methods", "teleport"], "unknown methods"),
        (["bench", "maze", "--methods", "random", "--episodes", "0"], "--episodes must be positive"),
    ],
)
def test_bad_benchmark_input_gives_one_line(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_planner_overrides_may_follow_the_options(capsys):
    # The override is parsed and reaches the planner (which refuses it), not rejected by argparse.
    assert main(["bench", "maze", "--methods", "df", "--episodes", "1", "df_planner.mc_samples=0"]) == 2
    assert "need mc_samples >= 1" in capsys.readouterr().err
