"""Diffusion forcing on real PointMaze trajectories: schedules, per-token noise, the planner's plumbing."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.data.minari_io import load_dataset
from worldsim.data.trajectories import STEP_DIM, TrajectoryWindows, steps_to_tokens, tokens_to_steps
from worldsim.diffusion.forcing import DiffusionForcing, ForcingConfig, full_sequence_schedule, pyramid_schedule
from worldsim.models.trajectory_transformer import TrajectoryTransformer, TrajectoryTransformerConfig


def test_pyramid_schedule_denoises_the_near_future_first():
    levels = pyramid_schedule(num_tokens=5, sampling_levels=4, slope=2)
    assert (levels[0] == 4).all() and (levels[-1] == 0).all()
    assert (np.diff(levels, axis=0) <= 0).all()  # a token's noise never goes up
    assert (np.diff(levels, axis=1) >= 0).all()  # at every step the near future is at most as noisy as the far
    finished = (levels == 0).argmax(axis=0)  # the step at which each token becomes clean
    assert finished.tolist() == [4, 6, 8, 10, 12]
    full = full_sequence_schedule(5, 4)
    assert (full == full[:, :1]).all() and len(full) == 5
    assert (pyramid_schedule(3, 4, 1, first_token_clean=True)[:, 0] == 0).all()
    # A slope below 1 starts neighbouring tokens together: 4 levels + 2 steps of delay for 5 tokens.
    half = pyramid_schedule(num_tokens=5, sampling_levels=4, slope=0.5)
    assert ((half == 0).argmax(axis=0)).tolist() == [4, 5, 5, 6, 6]
    assert (np.diff(half, axis=0) <= 0).all() and (np.diff(half, axis=1) >= 0).all()


def test_fewer_sampling_levels_span_the_same_noise():
    model = DiffusionForcing(TrajectoryTransformer(TrajectoryTransformerConfig(token_dim=STEP_DIM, width=16, depth=1, heads=2)))
    model.use_sampling_levels(5)
    assert model.config.sampling_levels == 5
    assert model.level_timesteps.tolist() == [0, 200, 400, 599, 799, 999]  # level 0 (clean) to the noisiest training level


def test_tokens_stack_consecutive_steps():
    steps = np.arange(2 * 12 * STEP_DIM).reshape(2, 12, STEP_DIM)
    tokens = steps_to_tokens(steps, 4)
    assert tokens.shape == (2, 3, 4 * STEP_DIM)
    np.testing.assert_array_equal(tokens[0, 1, :STEP_DIM], steps[0, 4])
    np.testing.assert_array_equal(tokens_to_steps(tokens, 4), steps)


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    collect = ("--env", "pointmaze-umaze", "--agent", "waypoint", "--steps", "1200")
    with collected(tmp_path_factory, "worldsim/pointmaze-umaze-waypoint-v0", *collect) as dataset_id:
        yield TrajectoryWindows(load_dataset(dataset_id), num_tokens=4, frame_stack=4)


def test_windows_are_normalised_real_steps_inside_episodes(windows):
    assert windows[0].shape == (4, 4 * STEP_DIM)
    everything = torch.stack([windows[i] for i in range(0, len(windows), 7)])
    steps = tokens_to_steps(everything, 4)
    assert steps.mean().abs() < 0.5 and 0.5 < steps.std() < 1.5
    raw = windows.normalizer.denormalize(steps[0])
    dt = 0.01  # one MuJoCo step: consecutive positions differ by about velocity * dt
    np.testing.assert_allclose(raw[1:, :2], raw[:-1, :2] + raw[1:, 2:4] * dt, atol=0.02)


def condition_all(state):
    def condition(x):
        x = x.clone()
        x[:, 0, :4] = state
        return x

    return condition


def test_per_token_noise_training_learns_and_sampling_keeps_the_known_state(windows):
    torch.manual_seed(0)
    network = TrajectoryTransformer(TrajectoryTransformerConfig(token_dim=4 * STEP_DIM, max_tokens=4, width=32, depth=2, heads=2))
    model = DiffusionForcing(network, ForcingConfig(sampling_levels=5))
    batch = torch.stack([windows[i] for i in range(0, len(windows), max(len(windows) // 64, 1))][:64])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model(batch)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])

    known = batch[:3, 0, :4]

    def condition(x):
        x = x.clone()
        x[:, 0, :4] = known
        return x

    plans = model.sample((3, 4, 4 * STEP_DIM), pyramid_schedule(4, 5, 1), condition=condition, generator=torch.Generator().manual_seed(0))
    assert plans.shape == (3, 4, 4 * STEP_DIM) and torch.isfinite(plans).all()
    torch.testing.assert_close(plans[:, 0, :4], known)
    # Goal guidance pulls every planned position towards the goal, through the network or on the
    # clean estimate.
    goal = torch.tensor([2.0, -1.0])
    normalizer = windows.normalizer

    def score(x0):
        positions = normalizer.denormalize(tokens_to_steps(x0, 4))[..., :2]
        return -((positions - goal) ** 2).sum(-1).mean(-1)

    def goal_distance(x):
        return (-score(x)).mean().item()

    schedule = pyramid_schedule(4, 5, 1)
    free = model.sample((8, 4, 4 * STEP_DIM), schedule, condition=condition_all(known[:1]), generator=torch.Generator().manual_seed(1))
    for through_network in (True, False):
        guided = model.sample(
            (8, 4, 4 * STEP_DIM),
            schedule,
            condition=condition_all(known[:1]),
            score=score,
            guidance_scale=0.5,
            mc_group=4,
            through_network=through_network,
            generator=torch.Generator().manual_seed(1),
        )
        assert goal_distance(guided) < 0.95 * goal_distance(free), (through_network, goal_distance(guided), goal_distance(free))

    # Causal: a token's estimate does not depend on later tokens.
    x, t = torch.randn(1, 4, 4 * STEP_DIM), torch.full((1, 4), 500)
    changed = x.clone()
    changed[:, 3] += 1.0
    torch.testing.assert_close(network(x, t)[:, :3], network(changed, t)[:, :3])

    # So the sampler may leave out the tokens after the last moving one: the same plans as a run of
    # the whole sequence at every step (the network told it is not causal).
    for guidance in (0.0, 0.5):
        options = {"condition": condition_all(known[:1]), "score": score, "guidance_scale": guidance, "through_network": False}
        skipping = model.sample((4, 4, 4 * STEP_DIM), schedule, generator=torch.Generator().manual_seed(2), **options)
        network.causal = False
        try:
            whole = model.sample((4, 4, 4 * STEP_DIM), schedule, generator=torch.Generator().manual_seed(2), **options)
        finally:
            del network.causal
        torch.testing.assert_close(skipping, whole, atol=1e-5, rtol=1e-5)


def test_planner_trains_plans_in_a_batch_and_refuses_another_maze(windows, tmp_path):
    from worldsim.agents import make_agent

    from worldsim.config import load_config
    from worldsim.errors import WorldsimError
    from worldsim.train.planner_training import train_planner

    model_values = load_config(
        "model", "df-umaze", ["model.num_tokens=4", "model.frame_stack=4", "model.network.width=32", "model.network.depth=1"]
    )
    train_values = load_config("train", "df-umaze", ["train.steps=3", "train.batch_size=8", "train.checkpoint_every=2"])
    path = train_planner(model_values, train_values, tmp_path / "run", progress=False)

    env = gym.make("worldsim/PointMaze-UMaze-v0", goal_cell="d4rl")
    planner = make_agent("df_planner", env, path=path, replan_every=3, mc_samples=2)
    observations = [env.reset(seed=s)[0] for s in range(3)]
    actions = planner.act_batch(observations)
    assert actions.shape == (3, 2) and np.abs(actions).max() <= 1
    # 4 tokens of 4 steps: the history token, then 12 planned steps starting at the current state.
    assert planner.plans.shape == (3, 12, STEP_DIM) and len(planner.plan_seconds) == 1
    states = np.stack([o["observation"] for o in observations])
    np.testing.assert_allclose(planner.plans[:, 0, :4], states, atol=1e-4)
    np.testing.assert_allclose(planner.history[:, -1], np.concatenate([states, actions], axis=1), atol=1e-6)
    planner.act_batch(observations)
    planner.act_batch(observations)
    assert len(planner.plan_seconds) == 1  # replans every 3 steps, all episodes in one pass
    planner.act_batch(observations)
    assert len(planner.plan_seconds) == 2

    with pytest.raises(WorldsimError, match="trained on the umaze maze"):
        make_agent("df_planner", gym.make("worldsim/PointMaze-Medium-v0"), path=path)
    with pytest.raises(WorldsimError, match="needs a trained checkpoint"):
        make_agent("df_planner", gym.make("CartPole-v1"))
    env.close()
