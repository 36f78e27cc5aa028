"""Cooperative Pong: the PettingZoo and Gymnasium views, the pixel-reading scripted pair, collection."""

import warnings

import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from worldsim.agents import make_agent
from worldsim.agents.scripted_pong import ScriptedPongAgent, parse_frame
from worldsim.envs import make_env
from worldsim.envs.real.coop_pong import AGENT_INFO_KEYS, COOP_PONG_INFO_KEYS, CoopPongEnv, parallel_env

from worldsim.errors import WorldsimError
from worldsim.eval.collect import collect_from_configs

with warnings.catch_warnings():  # pettingzoo.test imports PettingZoo's versioned env modules, which warn
    warnings.simplefilter("ignore", DeprecationWarning)
    from pettingzoo.test import parallel_api_test


@pytest.fixture
def pong():
    env = gym.make("worldsim/CoopPong-v0")
    yield env
    env.close()


def play(env, agent, seed, on_step=None):
    """One episode; ``on_step(observation, info)`` sees every observation before it is acted on."""
    observation, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    while True:
        if on_step:
            on_step(observation, info)
        observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
        if terminated or truncated:
            return info, terminated


def test_parallel_env_passes_pettingzoo_api_test():
    env = parallel_env()
    parallel_api_test(env, num_cycles=300)
    observations, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents == ["paddle_0", "paddle_1"]
    assert env.metadata["name"] == "worldsim/CoopPong-v0"
    for agent in env.agents:
        assert env.observation_space(agent) == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        assert env.action_space(agent) == gym.spaces.Discrete(3)
        assert env.observation_space(agent).contains(observations[agent])
        assert {key: type(value) for key, value in infos[agent].items()} == AGENT_INFO_KEYS
    assert infos["paddle_0"]["ball_x"] == infos["paddle_1"]["ball_x"] == 32.0  # the ball starts at the centre
    with pytest.raises(WorldsimError, match="paddle_1"):
        env.step({"paddle_0": 0})
    env.close()


def test_parallel_env_ends_all_paddles_with_the_penalty_when_the_ball_goes_out():
    env = parallel_env(max_reward=90, max_cycles=900)
    env.reset(seed=1)
    while env.agents:  # both paddles up against the top: the ball soon gets past one
        _, rewards, terminations, truncations, infos = env.step(dict.fromkeys(env.agents, 1))
        if not any(terminations.values()):
            assert rewards == {"paddle_0": pytest.approx(0.1), "paddle_1": pytest.approx(0.1)}
    assert all(terminations.values()) and not any(truncations.values())
    assert rewards == {"paddle_0": -10.0, "paddle_1": -10.0}
    assert infos["paddle_0"]["ball_out"] and infos["paddle_1"]["ball_out"]
    with pytest.raises(WorldsimError, match="reset"):
        env.step({"paddle_0": 0, "paddle_1": 0})
    env.close()


@pytest.mark.parametrize("hide_ball_out", [True, False])
def test_the_miss_frame_shows_the_field_without_the_ball_unless_asked_to_keep_it(hide_ball_out):
    """The miss's last observation: the ball gone from the field (default), or PettingZoo's cut ball."""
    env = CoopPongEnv(hide_ball_out=hide_ball_out)
    env.reset(seed=1)
    terminated = False
    while not terminated:  # both paddles up against the top: the ball soon gets past one
        before = env.parallel.state()
        observation, _, terminated, truncated, info = env.step(np.array([1, 1]))
        assert not truncated
    assert info["ball_out"] and not 1 < info["ball_x"] < 63  # the info still says where the ball went out
    seen = parse_frame(observation)
    assert seen.paddle_y == parse_frame(before).paddle_y  # the paddles, still at the top, are drawn as before
    if hide_ball_out:
        assert seen.ball is None
        edge = slice(0, 3) if info["ball_x"] < 32 else slice(-3, None)
        rows = slice(int(info["ball_y"]) - 3, int(info["ball_y"]) + 4)
        assert observation[rows, edge].max() == 0  # nothing drawn where the cut ball would be
    else:
        assert seen.ball is not None and abs(seen.ball[1] - info["ball_y"]) < 2
    env.close()


def test_joint_env_passes_gymnasium_checker(pong):
    check_env(pong.unwrapped)
    assert pong.action_space == gym.spaces.MultiDiscrete([3, 3])
    assert pong.unwrapped.possible_agents == ["paddle_0", "paddle_1"]
    pong.reset(seed=0)
    with pytest.raises(WorldsimError, match="one per paddle"):
        pong.unwrapped.step([0.5, 1])
    with pytest.raises(WorldsimError, match="unknown Cooperative Pong argument"):
        CoopPongEnv(ball_sped=9)


def test_joint_env_info_has_the_same_keys_and_types_at_reset_and_every_step(pong):
    _, info = pong.reset(seed=0)
    assert {key: type(value) for key, value in info.items()} == COOP_PONG_INFO_KEYS
    assert info["rally_steps"] == 0 and not info["ball_out"]
    pong.action_space.seed(0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = pong.step(pong.action_space.sample())
        steps += 1
        assert {key: type(value) for key, value in info.items()} == COOP_PONG_INFO_KEYS
        assert reward == pytest.approx(info["reward_paddle_0"] + info["reward_paddle_1"])
        assert bool(info["ball_out"]) == terminated
    assert terminated and info["rally_steps"] == steps and reward == -20.0  # random paddles miss quickly


def test_same_seed_same_frames():
    frames = []
    for _ in range(2):
        env = gym.make("worldsim/CoopPong-v0", render_mode="rgb_array")
        observation, _ = env.reset(seed=7)
        actions = np.random.default_rng(0).integers(0, 3, size=(40, 2))
        episode = [observation] + [env.step(action)[0] for action in actions]
        np.testing.assert_array_equal(env.render(), episode[-1])
        frames.append(np.stack(episode))
        env.close()
    np.testing.assert_array_equal(frames[0], frames[1])


def test_frame_parser_finds_ball_and_paddles_where_the_game_has_them():
    pong = gym.make("worldsim/CoopPong-v0", max_cycles=250)
    errors, unseen = [], []

    def compare(observation, info):
        frame = parse_frame(observation)
        if frame.ball is None:
            unseen.append(info["rally_steps"])
        else:
            errors.append(abs(np.subtract(frame.ball, (info["ball_x"], info["ball_y"]))).max())
        errors.append(abs(frame.paddle_y[0] - info["paddle_0_y"]))
        errors.append(abs(frame.paddle_y[1] - info["paddle_1_y"]))

    scripted = ScriptedPongAgent(pong, noise=0.3)  # rallies: the ball meets the cake's tiers
    for seed in range(2):
        play(pong, scripted, seed, compare)
        play(pong, make_agent("random", pong), seed, compare)
    pong.close()
    assert len(errors) > 600 and not unseen
    assert max(errors) < 1.5


def test_scripted_pair_keeps_the_ball_in_play_far_longer_than_random():
    env = gym.make("worldsim/CoopPong-v0", max_cycles=200)
    scripted, random = ScriptedPongAgent(env, noise=0.0), make_agent("random", env)
    scripted_rallies = [int(play(env, scripted, seed)[0]["rally_steps"]) for seed in range(3)]
    random_rallies = [int(play(env, random, seed)[0]["rally_steps"]) for seed in range(3)]
    env.close()
    assert scripted_rallies == [200, 200, 200]  # noiseless, it never misses
    assert np.mean(random_rallies) < 100  # about 45 on average


def test_scripted_agent_noise_follows_the_seed_protocol(pong):
    agent = ScriptedPongAgent(pong, noise=0.5, seed=3)
    observation, _ = pong.reset(seed=0)
    first = [agent.act(observation) for _ in range(20)]
    agent.reset(seed=3)
    again = [agent.act(observation) for _ in range(20)]
    np.testing.assert_array_equal(first, again)
    assert all(pong.action_space.contains(action) and action.dtype == np.int64 for action in first)
    assert len({tuple(action) for action in first}) > 1


def test_scripted_agent_refuses_other_envs():
    mario_like = gym.make("CartPole-v1")
    with pytest.raises(WorldsimError, match="--env coop-pong"):
        ScriptedPongAgent(mario_like)


def test_collect_writes_a_minari_dataset_of_joint_actions(minari_path):
    summary = collect_from_configs(
        "coop-pong", "scripted-pong:0.5,random:0.5", 160, ["scripted-pong.noise=0.2"], dataset_id="worldsim/coop-pong-test-v0",
        progress=False,
    )  # fmt: skip
    dataset = minari.load_dataset("worldsim/coop-pong-test-v0")
    assert dataset.total_steps == 160 == summary.steps
    assert dataset.action_space == gym.spaces.MultiDiscrete([3, 3])
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        assert episode.actions.shape == (steps, 2) and np.issubdtype(episode.actions.dtype, np.integer)
        assert episode.observations.shape == (steps + 1, 64, 64, 3)
        assert set(episode.infos) == set(COOP_PONG_INFO_KEYS)
        assert episode.infos["ball_x"].shape == (steps + 1,)
        assert episode.infos["rally_steps"][0] == 0
        np.testing.assert_array_equal(episode.terminations, episode.infos["ball_out"][1:])


def test_make_env_builds_coop_pong_from_its_config():
    env = make_env("coop-pong", ["env.kwargs.max_cycles=50"])
    assert env.unwrapped.game_kwargs["max_cycles"] == 50
    assert env.observation_space.shape == (64, 64, 3)
    env.close()
