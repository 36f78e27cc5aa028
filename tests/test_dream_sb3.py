"""The SB3 front-end over the dream engine: SB3's same-step autoreset, the agent's own preprocessing
for vectorised envs, and a DQN that learns on it."""

import numpy as np
import pytest
from stable_baselines3 import DQN
from worldsim.agents.dqn import DQN_DEFAULTS, REWARD_SCALE, grayscale_resize
from worldsim.agents.dqn_vec import VecAgentPreprocessing
from worldsim.envs.dream_sb3 import DreamSB3VecEnv

from worldsim.errors import WorldsimError


def test_ended_dreams_restart_in_the_same_step_with_their_last_frame_in_info():
    envs = DreamSB3VecEnv(3, seed=0, max_episode_steps=1)
    first = envs.reset()
    assert first.shape == (3, 64, 64, 3) and first.dtype == np.uint8
    observations, rewards, dones, infos = envs.step(np.array([3, 0, 6]))
    assert rewards.dtype == np.float32 and set(infos[0]) >= {"x_pos", "is_dying", "flag_get"}
    assert dones.all()  # the time limit, or the end model
    for i in range(3):
        assert infos[i]["terminal_observation"].shape == (64, 64, 3)
        assert infos[i]["TimeLimit.truncated"] != bool(infos[i]["is_dying"] or infos[i]["flag_get"])
    bank = envs.engine.start_states.frames[:, -1]
    assert all(any(np.array_equal(observation, start) for start in bank) for observation in observations)
    with pytest.raises(WorldsimError, match="do not fit"):
        envs.step(np.array([7, 0, 0]))


def test_agent_preprocessing_stacks_like_act_and_scales_rewards():
    inner = DreamSB3VecEnv(2, seed=1, max_episode_steps=2)
    envs = VecAgentPreprocessing(inner)
    stacks = envs.reset()
    assert stacks.shape == (2, 4, 84, 84) and (stacks == stacks[:, :1]).all()  # the first frame repeated
    observations, rewards, dones, infos = envs.step(np.array([1, 1]))
    going = ~dones  # a dream the end model ended restarts at once
    assert np.array_equal(stacks[going, 1:], observations[going, :3])
    assert np.abs(rewards).max() <= 1.0
    observations, rewards, dones, infos = envs.step(np.array([1, 1]))
    assert dones.all()  # the time limit
    assert (observations == observations[:, :1]).all()  # a new episode: its first frame repeated
    assert infos[0]["terminal_observation"].shape == (4, 84, 84)
    assert REWARD_SCALE > 1 and grayscale_resize(inner.engine.observations()[0], 84).shape == (84, 84)


def test_dqn_learns_in_batched_dreams():
    envs = VecAgentPreprocessing(DreamSB3VecEnv(4, seed=2))
    model = DQN("CnnPolicy", envs, **{**DQN_DEFAULTS, "learning_starts": 16, "buffer_size": 500, "train_freq": 1, "gradient_steps": 1})
    model.learn(48)
    assert model.num_timesteps == 48 and model._n_updates > 0
