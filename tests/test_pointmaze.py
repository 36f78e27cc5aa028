"""PointMaze (worldsim/PointMaze-*-v0) and the waypoint expert, on the real MuJoCo envs."""

import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium_robotics.envs.maze import maps
from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv as RoboticsPointMazeEnv
from worldsim.agents import make_agent
from worldsim.agents.waypoint_expert import WaypointExpert
from worldsim.envs import POINTMAZE_IDS, POINTMAZE_MAX_EPISODE_STEPS
from worldsim.envs.real.pointmaze import D4RL_GOAL_CELLS, PointMazeEnv

import worldsim  # noqa: F401  (registers the env ids)
from worldsim.errors import WorldsimError

MAZES = list(POINTMAZE_IDS)
SUCCESS_RADIUS = 0.45

# What check_env may say about PointMaze and nothing else: the observation Boxes are unbounded as in
# Gymnasium-Robotics (kept so episodes match the Minari D4RL/pointmaze datasets), and a directly
# constructed env has no spec to build its other render modes from.
ALLOWED_CHECK_WARNINGS = (
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
    "Not able to test alternative render modes",
)


def unexpected_warnings(caught) -> list[str]:
    messages = [str(w.message) for w in caught]
    return [m for m in messages if not any(allowed in m for allowed in ALLOWED_CHECK_WARNINGS)]


def run_expert(env: gym.Env, expert: WaypointExpert, seed: int, max_steps: int | None = None):
    """Play one episode; returns (first step with distance <= 0.45 or None, steps, final info)."""
    observation, info = env.reset(seed=seed)
    expert.reset(seed=seed)
    assert np.linalg.norm(observation["achieved_goal"] - observation["desired_goal"]) > SUCCESS_RADIUS
    reached, steps = None, 0
    while max_steps is None or steps < max_steps:
        action = expert.act(observation, info)
        observation, _, terminated, truncated, info = env.step(action)
        steps += 1
        distance = np.linalg.norm(observation["achieved_goal"] - observation["desired_goal"])
        if reached is None and distance <= SUCCESS_RADIUS:
            reached = steps
        if terminated or truncated:
            break
    return reached, steps, info


# ----------------------------------------------------------------------------- the env


@pytest.mark.parametrize("maze", MAZES)
def test_check_env_passes(maze):
    env = gym.make(POINTMAZE_IDS[maze], goal_cell="d4rl")
    assert isinstance(env.unwrapped, PointMazeEnv)
    assert isinstance(env.unwrapped, RoboticsPointMazeEnv)
    assert env.spec.max_episode_steps == POINTMAZE_MAX_EPISODE_STEPS[maze]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # through the spec: also checks that a second close() is allowed. Rendering is skipped
        # because the spec route would open a "human" window, which needs a display.
        check_env(env.unwrapped, skip_render_check=True)
        direct = PointMazeEnv(maze)
        check_env(direct)
    assert unexpected_warnings(caught) == []
    env.close()
    direct.close()


@pytest.mark.parametrize("make", [lambda: PointMazeEnv("umaze"), lambda: gym.make("worldsim/PointMaze-UMaze-v0")])
def test_close_twice(make):
    env = make()
    env.reset(seed=0)
    env.close()
    env.close()


@pytest.mark.parametrize("maze", ["umaze", "large"])
def test_same_seed_same_episode(maze):
    def first_observations(seed: int) -> list[np.ndarray]:
        env = gym.make(POINTMAZE_IDS[maze])  # random goal: the seed must fix it too
        actions = np.random.default_rng(123).uniform(-1, 1, size=(50, 2)).astype(np.float32)
        observation, _ = env.reset(seed=seed)
        trace = [np.concatenate([observation["observation"], observation["desired_goal"]])]
        for action in actions[:-1]:
            observation, *_ = env.step(action)
            trace.append(np.concatenate([observation["observation"], observation["desired_goal"]]))
        env.close()
        return trace

    first, again, other = first_observations(5), first_observations(5), first_observations(6)
    assert len(first) == 50
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.allclose(np.stack(first), np.stack(other))
    assert not np.allclose(first[0][:2], first[-1][:2])  # the ball moved: the actions did something


@pytest.mark.parametrize("maze", MAZES)
def test_d4rl_goal_cell(maze):
    env = gym.make(POINTMAZE_IDS[maze], goal_cell="d4rl")
    unwrapped = env.unwrapped
    centre = unwrapped.cell_to_xy(D4RL_GOAL_CELLS[maze])
    for seed in range(5):
        observation, _ = env.reset(seed=seed)
        goal = observation["desired_goal"]
        assert np.all(np.abs(goal - centre) <= 0.25 + 1e-9)  # the robotics' uniform noise inside the cell
        assert unwrapped.xy_to_cell(goal) == D4RL_GOAL_CELLS[maze]
        assert unwrapped.xy_to_cell(observation["achieved_goal"]) != D4RL_GOAL_CELLS[maze]
    # a reset option overrides the fixed cell for one episode
    other = next(cell for cell in unwrapped.free_cells if cell != D4RL_GOAL_CELLS[maze])
    observation, _ = env.reset(seed=0, options={"goal_cell": other})
    assert unwrapped.xy_to_cell(observation["desired_goal"]) == other
    env.close()


def test_d4rl_cells_and_geometry():
    assert D4RL_GOAL_CELLS == {"umaze": (1, 1), "medium": (6, 6), "large": (7, 9)}
    env = PointMazeEnv("medium", goal_cell=(2, 4))
    assert env.maze_map == [list(row) for row in maps.MEDIUM_MAZE]
    assert env.goal_cell == (2, 4)
    for cell in env.free_cells:
        assert env.is_free(cell)
        assert env.xy_to_cell(env.cell_to_xy(cell)) == cell
    assert not env.is_free((0, 0)) and not env.is_free((8, 1))
    # row 0 is the top (largest y), column 0 the left (smallest x)
    assert env.cell_to_xy((1, 1))[1] > env.cell_to_xy((6, 1))[1]
    assert env.cell_to_xy((1, 1))[0] < env.cell_to_xy((1, 6))[0]
    observation, _ = env.reset(seed=3)
    assert env.xy_to_cell(observation["desired_goal"]) == (2, 4)
    env.close()


def test_random_goal_without_goal_cell():
    env = PointMazeEnv("umaze")
    cells = {env.xy_to_cell(env.reset(seed=seed)[0]["desired_goal"]) for seed in range(20)}
    assert len(cells) > 1
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"maze": "mazy"}, ["'mazy'", "umaze", "medium", "large"]),
        ({"maze": "umaze", "goal_cell": (0, 0)}, ["(0, 0)", "wall", "umaze", "(1, 1)"]),
        ({"maze": "large", "goal_cell": (1, 5)}, ["(1, 5)", "wall", "large"]),
        ({"maze": "umaze", "goal_cell": (5, 1)}, ["(5, 1)", "outside", "5 rows"]),
        ({"maze": "umaze", "goal_cell": (-1, 1)}, ["(-1, 1)", "outside"]),
        ({"maze": "umaze", "goal_cell": "center"}, ["'center'", "d4rl"]),
        ({"maze": "umaze", "goal_cell": (1.5, 1)}, ["(1.5, 1)", "(row, col)"]),
        ({"maze": "umaze", "reward_type": "shaped"}, ["'shaped'", "sparse"]),
    ],
)
def test_bad_construction_raises_one_line(kwargs, expected):
    with pytest.raises(WorldsimError) as error:
        PointMazeEnv(**kwargs)
    message = str(error.value)
    assert "\n" not in message
    for text in expected:
        assert text in message


def test_bad_reset_options_raise():
    env = gym.make("worldsim/PointMaze-Medium-v0", goal_cell="d4rl")
    with pytest.raises(WorldsimError, match=r"goal cell \(0, 3\) is a wall in the medium maze"):
        env.reset(seed=0, options={"goal_cell": (0, 3)})
    with pytest.raises(WorldsimError, match=r"reset cell \(8, 8\) is outside the medium maze"):
        env.reset(seed=0, options={"reset_cell": np.array([8, 8])})
    with pytest.raises(WorldsimError, match="unknown reset option"):
        env.reset(seed=0, options={"goal": (1, 1)})
    observation, _ = env.reset(seed=0, options={"reset_cell": (1, 1)})  # good options still work
    assert env.unwrapped.xy_to_cell(observation["achieved_goal"]) == (1, 1)
    assert env.unwrapped.xy_to_cell(observation["desired_goal"]) == (6, 6)
    env.close()


# ----------------------------------------------------------------------------- the expert


@pytest.mark.parametrize(("maze", "seeds"), [("umaze", range(4)), ("medium", range(3))])
def test_expert_reaches_d4rl_goal(maze, seeds):
    env = gym.make(POINTMAZE_IDS[maze], goal_cell="d4rl")
    expert = make_agent("waypoint", env)
    assert isinstance(expert, WaypointExpert)
    for seed in seeds:
        reached, steps, _ = run_expert(env, expert, seed)
        assert reached is not None, f"{maze} seed {seed}: goal not reached in {steps} steps"
        assert steps == POINTMAZE_MAX_EPISODE_STEPS[maze]  # continuing task: runs to the time limit
    env.close()


def test_expert_with_action_noise_reaches_goal():
    env = gym.make("worldsim/PointMaze-UMaze-v0", goal_cell="d4rl")
    expert = WaypointExpert(env, action_noise=0.5)
    for seed in range(3):
        reached, steps, _ = run_expert(env, expert, seed)
        assert reached is not None, f"seed {seed}: goal not reached in {steps} steps"
    env.close()


def test_expert_reaches_successive_goals_in_continuing_task():
    env = gym.make("worldsim/PointMaze-UMaze-v0", continuing_task=True, reset_target=True, max_episode_steps=900)
    expert = WaypointExpert(env, action_noise=0.2)
    observation, info = env.reset(seed=1)
    expert.reset(seed=1)
    goals = [observation["desired_goal"].copy()]
    reached = 0
    for _ in range(900):
        observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
        assert not terminated
        if info["success"]:
            reached += 1
        if not np.array_equal(observation["desired_goal"], goals[-1]):
            goals.append(observation["desired_goal"].copy())
        if reached >= 2:
            break
    assert reached >= 2, f"reached {reached} goal(s) in 900 steps"
    # each arrival drew a new goal (seen from the next step on: the arrival step still shows the old one)
    assert len(goals) >= 2
    env.close()


def test_expert_actions_and_reproducibility():
    env = gym.make("worldsim/PointMaze-Medium-v0", goal_cell="d4rl")
    expert = WaypointExpert(env, action_noise=0.5, seed=0)

    def actions(seed: int) -> np.ndarray:
        observation, info = env.reset(seed=seed)
        expert.reset(seed=seed)
        taken = []
        for _ in range(60):
            action = expert.act(observation, info)
            assert action.dtype == np.float32 and action.shape == (2,)
            assert env.action_space.contains(action)
            taken.append(action)
            observation, _, _, _, info = env.step(action)
        return np.stack(taken)

    first, again = actions(4), actions(4)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first).max() == pytest.approx(1.0)  # far from the goal the PD law saturates
    env.close()


def test_expert_plan_follows_the_maze():
    env = PointMazeEnv("umaze", goal_cell="d4rl")
    expert = WaypointExpert(env, waypoint_jitter=0.0)
    observation, _ = env.reset(seed=0, options={"reset_cell": (3, 1)})
    expert.reset(seed=0)

    def at(cell):  # the ball at rest at the centre of ``cell``
        return {**observation, "observation": np.array([*env.cell_to_xy(cell), 0.0, 0.0])}

    np.testing.assert_array_equal(expert.act(at((3, 1))), [1.0, 0.0])  # east, to the next cell
    # the U: along the bottom row, up the right column, back along the top row
    assert expert.plan == [(3, 1), (3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    # carried ahead along the path: same plan, steer to the cell after the one it is in (west)
    np.testing.assert_array_equal(expert.act(at((1, 3))), [-1.0, 0.0])
    assert expert.plan[0] == (3, 1)
    # thrown back behind the leg it was flying: plan again from there (east, not up through the wall)
    np.testing.assert_array_equal(expert.act(at((3, 1))), [1.0, 0.0])
    # a new goal cell: a new plan
    expert.act({**at((1, 3)), "desired_goal": env.cell_to_xy((3, 3))})
    assert expert.plan == [(1, 3), (2, 3), (3, 3)]
    env.close()

    env = PointMazeEnv("medium", goal_cell="d4rl")
    expert = WaypointExpert(env, waypoint_jitter=0.0)
    observation, _ = env.reset(seed=0, options={"reset_cell": (1, 1)})
    expert.act(observation)
    assert expert.plan == [(1, 1), (1, 2), (2, 2), (3, 2), (3, 3), (3, 4), (4, 4), (4, 5), (4, 6), (5, 6), (6, 6)]
    # off the path (a cell the plan never visits): a new shortest path from there
    off = {**observation, "observation": np.array([*env.cell_to_xy((1, 5)), 0.0, 0.0])}
    expert.act(off)
    assert expert.plan == [(1, 5), (2, 5), (2, 4), (3, 4), (4, 4), (4, 5), (4, 6), (5, 6), (6, 6)]
    env.close()


def test_expert_drives_the_plain_robotics_env():
    env = RoboticsPointMazeEnv(maze_map=maps.U_MAZE, continuing_task=True)
    os.remove(env.tmp_xml_file_path)  # the robotics env leaves its MuJoCo XML in the temp folder
    expert = WaypointExpert(env)
    observation, info = env.reset(seed=2, options={"goal_cell": np.array([1, 1]), "reset_cell": np.array([3, 1])})
    expert.reset(seed=2)
    for _ in range(300):
        observation, _, _, _, info = env.step(expert.act(observation, info))
        if info["success"]:
            break
    assert info["success"]
    env.close()


def test_expert_rejects_bad_options():
    env = PointMazeEnv("umaze")
    with pytest.raises(WorldsimError, match="action_noise=-0.1"):
        WaypointExpert(env, action_noise=-0.1)
    with pytest.raises(WorldsimError, match="waypoint_jitter=0.6"):
        WaypointExpert(env, waypoint_jitter=0.6)
    with pytest.raises(WorldsimError, match="PointMaze env"):
        WaypointExpert(gym.make("CartPole-v1"))
    env.close()


def test_rendering_a_maze_then_training_with_torch_does_not_crash():
    # Mesa's llvmpipe (behind EGL here) and Triton (imported by torch's first optimizer) each bring
    # an LLVM; loading Triton second used to segfault. A fresh process, so earlier imports don't hide it.
    import subprocess
    import sys

    script = (
        "import gymnasium as gym, torch, worldsim\n"
        "env = gym.make('worldsim/PointMaze-UMaze-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "assert env.render().ndim == 3\n"
        "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
