"""The shipped UMaze diffusion-forcing planner in real PointMaze episodes: guidance, schedule, controller."""

import numpy as np
import pytest
import torch
from worldsim.agents import make_agent
from worldsim.agents.df_planner import stop_at_goal, stop_at_wall
from worldsim.agents.maze_field import MazeField
from worldsim.envs.real.pointmaze import SUCCESS_RADIUS

from worldsim.data.trajectories import steps_to_tokens
from worldsim.eval.maze_bench import make_eval_env


@pytest.fixture
def env():
    env = make_eval_env("umaze", "single")
    yield env
    env.close()


def goal_distance_of(plans: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Mean distance of every planned position to the goal, per plan."""
    return np.linalg.norm(plans[..., :2] - goal, axis=-1).mean(-1)


@pytest.mark.parametrize("goal_distance", ["euclidean", "geodesic"])
def test_guidance_brings_plans_to_the_goal(env, goal_distance):
    """Guidance shortens the plans' distance to the goal, the one it follows: straight, or round the walls."""
    observation, _ = env.reset(seed=100_000)
    states = np.repeat(observation["observation"][None], 8, axis=0)
    goals = np.repeat(observation["desired_goal"][None], 8, axis=0)
    field = MazeField(env.unwrapped.maze_map)
    distances = {}
    for scale in (0.0, 0.2):
        options = {"goal_distance": goal_distance, "drop_collisions": goal_distance == "geodesic"}
        planner = make_agent("df_planner", env, guidance_scale=scale, mc_samples=1, seed=0, **options)
        plans = planner.plan(states, goals)
        assert plans.shape == (8, planner.config.plan_steps, 6) and np.isfinite(plans).all()
        np.testing.assert_allclose(plans[:, 0, :4], states, atol=1e-4)  # every plan starts at the ball
        if goal_distance == "geodesic":
            distances[scale] = field.distance(torch.as_tensor(plans[..., :2], dtype=torch.float32), goals).mean().item()
        else:
            distances[scale] = goal_distance_of(plans, goals[:, None]).mean()
    assert distances[0.2] < 0.8 * distances[0.0], distances


def test_pyramid_and_full_sequence_plans_follow_the_corridor(env):
    """The network's prior: unguided plans from the start, one sample each (so none is chosen for
    staying clear), at the checkpoint's 10 noise levels, stay out of the U's inner wall (cells (2, 1)-(2, 2))."""
    observation, _ = env.reset(seed=100_000)
    states = np.repeat(observation["observation"][None], 8, axis=0)
    for schedule in ("pyramid", "full"):
        planner = make_agent("df_planner", env, schedule=schedule, sampling_levels=None, slope=1, guidance_scale=0.0, mc_samples=1, seed=0)
        positions = planner.plan(states, np.zeros((8, 2)))[..., :2]
        # UMaze cells are 1x1 and centred on (0, 0): the inner wall spans x in [-1.5, 0.5], y in [-0.5, 0.5].
        inside_wall = (positions[..., 0] < 0.5 - 0.1) & (np.abs(positions[..., 1]) < 0.5 - 0.1)
        assert inside_wall.mean() < 0.02, (schedule, inside_wall.mean())


def test_planner_reaches_the_goal_and_stays(env):
    torch.manual_seed(0)
    planner = make_agent("df_planner", env, mc_samples=4, seed=0)
    observation, _ = env.reset(seed=100_000)
    distances = []
    for _ in range(300):  # the D4RL UMaze horizon
        observation, *_ = env.step(planner.act(observation))
        distances.append(np.linalg.norm(observation["achieved_goal"] - observation["desired_goal"]))
    distances = np.array(distances)
    first = int(np.argmax(distances <= SUCCESS_RADIUS))
    assert distances[first] <= SUCCESS_RADIUS, distances.min()  # reached within the horizon
    assert (distances[first + 20 :] <= SUCCESS_RADIUS).mean() > 0.9  # the controller holds the ball at the goal
    # The history token holds the last steps taken, the last one now.
    assert planner.history.shape == (1, planner.config.frame_stack, 6)


def test_controller_tracks_the_plan_or_executes_its_actions(env):
    observation, _ = env.reset(seed=100_001)
    pd = make_agent("df_planner", env, guidance_scale=0.0, mc_samples=1, seed=0)
    action = pd.act(observation)
    target = pd.plans[0, 1]
    expected = np.clip(
        pd.p_gain * (target[:2] - observation["observation"][:2]) + pd.d_gain * (target[2:4] - observation["observation"][2:]), -1, 1
    )
    np.testing.assert_allclose(action, expected, atol=1e-5)

    executing = make_agent("df_planner", env, guidance_scale=0.0, mc_samples=1, controller="actions", seed=0)
    np.testing.assert_allclose(executing.act(observation), np.clip(executing.plans[0, 0, 4:], -1, 1), atol=1e-6)


def test_plans_end_at_the_goal():
    steps = torch.zeros(1, 5, 6)
    steps[0, :, 0] = torch.arange(5.0)  # x = 0, 1, 2, 3, 4 with some velocity and action
    steps[0, :, 2:] = 1.0
    held = stop_at_goal(steps, torch.tensor([[[2.1, 0.0]]]), radius=0.2)
    torch.testing.assert_close(held[0, :2], steps[0, :2])
    torch.testing.assert_close(held[0, 2:], torch.tensor([[2.1, 0, 0, 0, 0, 0]] * 3))


def test_plans_that_jump_are_not_kept(env, monkeypatch):
    """Of two sampled futures, the one that jumps to the goal (as through a wall) loses to the one that walks."""
    # Straight-line distances, walls not checked: the jump rule alone (the walking plan grazes a wall).
    planner = make_agent("df_planner", env, mc_samples=2, guidance_scale=0.0, goal_distance="euclidean", drop_collisions=False, seed=0)
    config, normalizer = planner.config, planner.normalizer
    start, goal = np.array([0.0, -1.0, 0.0, 0.0]), np.array([1.0, 1.0])
    steps = np.zeros((2, config.frame_stack * config.num_tokens, 6))
    walk = np.linspace(0, 1, steps.shape[1] - config.frame_stack)[:, None]
    steps[0, config.frame_stack :, :2] = start[:2] + walk * np.array([0.5, 0.5])  # walks a short way, slowly
    steps[1, config.frame_stack :, :2] = goal  # at the goal one step after the start
    steps[:, config.frame_stack, :2] = start[:2]
    tokens = steps_to_tokens(normalizer.normalize(steps.astype(np.float32)), config.frame_stack)
    monkeypatch.setattr(planner.model, "sample", lambda *args, **kwargs: torch.as_tensor(tokens))
    plan = planner.plan(start[None], goal[None])[0]
    assert np.linalg.norm(np.diff(plan[:, :2], axis=0), axis=1).max() < planner.max_jump
    planner.max_jump = np.inf  # without the check, the jump wins: it is at the goal soonest
    np.testing.assert_allclose(
        planner.plan(start[None], goal[None])[0, 1:, :2], np.broadcast_to(goal, (config.plan_steps - 1, 2)), atol=1e-4
    )


def test_plans_stop_at_the_first_wall():
    steps = torch.arange(6.0)[None, :, None].expand(2, 6, 6)
    collides = torch.tensor([[False, False, True, False, True, False], [False] * 6])
    held = stop_at_wall(steps, collides)
    assert held[0, :, 0].tolist() == [0, 1, 1, 1, 1, 1]
    torch.testing.assert_close(held[1], steps[1])


def test_the_maze_map_turns_plans_round_the_wall(env):
    """From the U's top arm to the bottom arm under strong guidance: plans guided and chosen by the
    straight line cut through the inner wall; guided and chosen by the geodesic distance, with
    plans through walls dropped, they go round it."""
    observation, _ = env.reset(seed=100_000, options={"reset_cell": (1, 2), "goal_cell": (3, 1)})
    states = np.repeat(observation["observation"][None], 4, axis=0)
    goals = np.repeat(observation["desired_goal"][None], 4, axis=0)
    field = MazeField(env.unwrapped.maze_map)
    in_wall = {}
    for goal_distance, drop in (("euclidean", False), ("geodesic", True)):
        planner = make_agent("df_planner", env, goal_distance=goal_distance, drop_collisions=drop, mc_samples=8, guidance_scale=0.1, seed=0)
        plans = torch.as_tensor(planner.plan(states, goals))
        in_wall[goal_distance] = field.collides(plans[..., :2]).float().mean().item()
        if goal_distance == "geodesic":
            # Round the wall: right along the top arm first, not down into it.
            assert (plans[:, 40, 0] > observation["observation"][0] + 0.4).all()
    assert in_wall["geodesic"] < in_wall["euclidean"] / 4, in_wall
