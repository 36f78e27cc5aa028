"""Agents on the real Mario emulator: the protocol, the scripted runner, DQN preprocessing and persistence."""

import gymnasium as gym
import numpy as np
import pytest
from worldsim.agents import Agent, make_agent
from worldsim.agents.dqn import DQNAgent, preprocess_env
from worldsim.envs.real.mario import MarioEnv

from worldsim.errors import WorldsimError
from worldsim.eval.episodes import run_episode

TINY_DQN = {"buffer_size": 500, "learning_starts": 64, "batch_size": 8, "train_freq": 4, "target_update_interval": 100}


@pytest.fixture(scope="module")
def mario():
    env = gym.make("worldsim/MarioReal-v0", noop_max=30)
    yield env
    env.close()


@pytest.mark.parametrize("name, options", [("random", {}), ("scripted", {}), ("dqn", {"hyperparameters": TINY_DQN})])
def test_agents_follow_the_protocol_and_act_in_the_action_space(mario, name, options):
    agent = make_agent(name, mario, **options)
    assert isinstance(agent, Agent)
    observation, info = mario.reset(seed=0)
    agent.reset(seed=0)
    for _ in range(20):
        action = agent.act(observation, info)
        assert mario.action_space.contains(action)
        observation, _, terminated, truncated, info = mario.step(action)
        if terminated or truncated:
            break


@pytest.mark.parametrize("name, options", [("random", {}), ("scripted", {"epsilon": 1.0}), ("dqn", {"epsilon": 1.0, "hyperparameters": TINY_DQN})])
def test_reset_seed_means_the_same_for_every_agent(mario, name, options):
    # The protocol: an int reseeds the agent's randomness; None keeps its stream going (seeded by
    # the constructor's seed=, else by OS entropy), as gymnasium.Env.reset does.
    observation, info = mario.reset(seed=0)

    def actions(agent, n=40):
        return [int(agent.act(observation, info)) for _ in range(n)]

    agent = make_agent(name, mario, **options, seed=3)
    first = actions(agent)
    agent.reset()
    continued = actions(agent)
    assert continued != first  # None does not restart the stream
    again = make_agent(name, mario, **options, seed=3)
    assert actions(again) == first
    again.reset(seed=None)
    assert actions(again) == continued  # ... and keeps it reproducible
    again.reset(seed=7)
    reseeded = actions(again)
    again.reset(seed=7)
    assert actions(again) == reseeded


def test_random_agent_is_reproducible_and_leaves_the_env_space_alone(mario):
    agent = make_agent("random", mario)
    agent.reset(seed=5)
    first = [agent.act(None) for _ in range(30)]
    agent.reset(seed=5)
    assert [agent.act(None) for _ in range(30)] == first
    assert agent.action_space is not mario.action_space


def test_scripted_runner_gets_well_past_where_random_play_dies(mario):
    agent = make_agent("scripted", mario)  # the configured default: epsilon 0.05
    results = [run_episode(mario, agent, seed) for seed in range(5)]
    # Random play dies at the first goomba (x ~ 300) or stops at the first pipes (x ~ 430-720);
    # the first gap is at x ~ 1100. The scripted runner gets past all of them.
    assert np.median([r.x_pos for r in results]) > 1100


def test_scripted_runner_works_from_pixels_alone(mario):
    agent = make_agent("scripted", mario, epsilon=0.0)
    observation, _ = mario.reset(seed=0)
    agent.reset(seed=0)
    for _ in range(300):
        observation, _, terminated, truncated, info = mario.step(agent.act(observation, None))
        if terminated or truncated:
            break
    assert info["x_pos"] > 1100  # without x_pos or y_pos: the stuck cue watches the ground scroll


def test_balanced_exploration_evens_out_the_action_histogram(mario):
    agent = make_agent("scripted", mario, epsilon=1.0, balance_actions=True)
    agent.reset(seed=0)
    observation, info = mario.reset(seed=0)
    for _ in range(70):
        agent.act(observation, info)
    assert agent.action_counts.tolist() == [10] * 7


def test_scripted_agent_rejects_an_env_without_mario_actions():
    env = gym.make("worldsim/MarioReal-v0", action_set=[["left"], ["A"]])
    with pytest.raises(WorldsimError, match="right\\+B"):
        make_agent("scripted", env)
    env.close()


def test_dqn_acting_preprocessing_equals_the_training_wrapper():
    env = MarioEnv(noop_max=30)
    agent = DQNAgent(env, hyperparameters=TINY_DQN)
    wrapped = preprocess_env(MarioEnv(noop_max=30), agent.frame_size, agent.frame_stack)
    observation, info = env.reset(seed=1)
    stacked, _ = wrapped.reset(seed=1)
    agent.reset(seed=1)
    for action in [1, 2, 2, 4, 3, 1, 5, 0]:
        agent.act(observation, info)
        np.testing.assert_array_equal(np.stack(agent._frames), stacked)
        observation, *_ = env.step(action)
        stacked, *_ = wrapped.step(action)
    assert stacked.shape == (4, 84, 84) and stacked.dtype == np.uint8


def test_dqn_learns_saves_and_loads_the_same_policy(tmp_path):
    env = MarioEnv(noop_max=30)
    agent = DQNAgent(env, seed=0, hyperparameters=TINY_DQN)
    before = [p.detach().clone() for p in agent.model.q_net.parameters()]
    agent.learn(env, 200, progress_bar=False)
    assert agent.trained_steps == 200
    assert any(not np.allclose(a, b.detach()) for a, b in zip(before, agent.model.q_net.parameters(), strict=True))

    agent.save(tmp_path / "agent.zip")
    loaded = make_agent("dqn", env, path=tmp_path / "agent.zip")
    assert loaded.trained_steps == 200
    observation, info = env.reset(seed=2)
    agent.reset(seed=2)
    loaded.reset(seed=2)
    for _ in range(15):
        action = agent.act(observation, info)
        assert loaded.act(observation, info) == action
        observation, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break


def test_dqn_load_checks_path_and_action_space(tmp_path):
    env = MarioEnv()
    with pytest.raises(WorldsimError, match="no DQN agent at"):
        DQNAgent.load(tmp_path / "missing.zip")
    DQNAgent(env, hyperparameters=TINY_DQN).save(tmp_path / "agent.zip")
    other = MarioEnv(action_set="right_only")
    with pytest.raises(WorldsimError, match="has 7 actions but the env has 5"):
        DQNAgent.load(tmp_path / "agent.zip", env=other)


def test_dqn_rejects_non_image_envs():
    env = gym.make("CartPole-v1")
    with pytest.raises(WorldsimError, match="RGB uint8"):
        DQNAgent(env)
