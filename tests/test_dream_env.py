"""``worldsim/Mario-v0`` with the checkpoint shipped in the package: the Gymnasium contract."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import DQN
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from worldsim.envs.dream import WorldModelEnv, shipped_checkpoint

from worldsim.errors import WorldsimError


@pytest.fixture(scope="module")
def env():
    env = gym.make("worldsim/Mario-v0")
    yield env
    env.close()


def test_spaces_match_the_real_env(env):
    real = gym.make("worldsim/MarioReal-v0")
    assert env.observation_space == real.observation_space
    assert env.action_space == real.action_space
    assert env.spec.max_episode_steps == real.spec.max_episode_steps
    assert env.unwrapped.action_set == real.unwrapped.action_set
    assert env.unwrapped.get_action_meanings() == real.unwrapped.get_action_meanings()
    real.close()


def test_gymnasium_and_sb3_env_checkers_pass(env):
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)


def test_step_returns_a_frame_reward_termination_and_info(env):
    observation, info = env.reset(seed=0)
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    assert info["x_pos"] > 0  # level starts are real first frames (Mario at x 40)
    observation, reward, terminated, truncated, info = env.step(3)  # right + jump
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
    assert set(info) >= {"x_pos", "flag_get", "is_dying", "end_probabilities"}
    assert info["end_probabilities"].shape == (3,) and abs(info["end_probabilities"].sum() - 1) < 1e-5


def test_same_seed_same_frames_and_other_seed_other_frames(env):
    def rollout(seed):
        frames = [env.reset(seed=seed)[0]]
        frames += [env.step(a)[0] for a in (1, 1, 2, 0)]
        return np.stack(frames)

    first, again, other = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[1:], other[1:])


def test_reset_from_a_given_real_context(env):
    real = gym.make("worldsim/MarioReal-v0")
    frames, actions = [real.reset(seed=3)[0]], [0]
    for action in (1, 1, 1, 1, 1, 2):
        frames.append(real.step(action)[0])
        actions.append(action)
    real.close()
    k = env.unwrapped.context_length
    observation, _ = env.reset(seed=0, options={"frames": np.stack(frames), "actions": np.array(actions)})
    np.testing.assert_array_equal(observation, frames[-1])
    dream = env.unwrapped.engine
    assert dream.actions[0].tolist() == actions[-k:]  # a longer history is cut to its last K
    # A single frame (what a real reset returns) is padded to K with action 0.
    observation, _ = env.reset(options={"frames": np.stack(frames[:1]), "actions": np.array([0])})
    np.testing.assert_array_equal(observation, frames[0])
    assert dream.actions[0].tolist() == [0] * k


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {
                "frames": np.zeros((4, 64, 64, 3), np.float32),
                "actions": np.zeros(4, int),
            },
            "uint8",
        ),
        (
            {"frames": np.zeros((4, 32, 32, 3), np.uint8), "actions": np.zeros(4, int)},
            "uint8",
        ),
        (
            {"frames": np.zeros((4, 64, 64, 3), np.uint8), "actions": np.zeros(3, int)},
            "one action per frame",
        ),
        (
            {"frames": np.zeros((4, 64, 64, 3), np.uint8), "actions": np.full(4, 9)},
            "actions are 0..6",
        ),
        ({"frames": np.zeros((4, 64, 64, 3), np.uint8)}, "not understood"),
    ],
)
def test_bad_reset_options_give_one_clear_error(env, options, message):
    with pytest.raises(WorldsimError, match=message):
        env.reset(options=options)


@pytest.mark.parametrize("action", [7, -1, 1.5, "right"])
def test_invalid_action_gives_one_clear_error(env, action):
    env.reset(seed=0)
    with pytest.raises(WorldsimError, match="not in Discrete"):
        env.unwrapped.step(action)


def test_truncation_and_rgb_array_rendering():
    env = gym.make("worldsim/Mario-v0", max_episode_steps=2, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (256, 256, 3)
    assert env.step(1)[3] is False
    assert env.step(1)[3] is True
    env.close()


def test_vector_env_steps_all_dreams_in_one_batch_and_autoresets():
    envs = gym.make_vec("worldsim/Mario-v0", num_envs=3, max_episode_steps=2)
    assert type(envs.unwrapped).__name__ == "WorldModelVectorEnv"
    assert envs.observation_space.shape == (3, 64, 64, 3) and envs.single_action_space.n == 7
    observations, info = envs.reset(seed=0)
    again, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(observations, again)
    starts = envs.unwrapped.engine.start_states.frames[:, -1]
    elapsed, ended = np.zeros(3, int), np.zeros(3, bool)
    for _ in range(6):
        observations, rewards, terminated, truncated, info = envs.step(np.array([1, 3, 0]))
        assert observations.shape == (
            3,
            64,
            64,
            3,
        ) and rewards.shape == terminated.shape == truncated.shape == (3,)
        assert info["x_pos"].shape == (3,) and info["_x_pos"].all()
        for i in range(3):
            if ended[i]:  # the step after an episode ends starts the next one (NEXT_STEP autoreset)
                assert any(np.array_equal(observations[i], start) for start in starts)
                assert rewards[i] == 0 and not terminated[i] and not truncated[i]
                elapsed[i] = 0
            else:
                elapsed[i] += 1
                assert truncated[i] == (elapsed[i] == 2)
        ended = terminated | truncated
    with pytest.raises(WorldsimError, match="do not fit"):
        envs.step(np.array([1, 2]))
    envs.close()


def test_sb3_trains_on_the_dream_unchanged():
    env = gym.make("worldsim/Mario-v0", max_episode_steps=20)
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=64,
        learning_starts=16,
        train_freq=4,
        batch_size=8,
        seed=0,
        device="cpu",
    )
    model.learn(total_timesteps=32)
    assert model.num_timesteps == 32
    env.close()


def test_corrupted_or_mismatched_checkpoints_give_one_clear_error(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(shipped_checkpoint(), broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WorldsimError, match="corrupted"):
        WorldModelEnv(checkpoint=broken)

    mismatched = tmp_path / "mismatched"
    shutil.copytree(shipped_checkpoint(), mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    config["model"]["unet"]["block_channels"] = [16, 16]
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorldsimError, match="does not fit"):
        WorldModelEnv(checkpoint=mismatched)

    no_starts = tmp_path / "no_starts"
    shutil.copytree(shipped_checkpoint(), no_starts)
    (no_starts / "start_states.npz").unlink()
    with pytest.raises(WorldsimError, match="start_states"):
        WorldModelEnv(checkpoint=no_starts)

    with pytest.raises(WorldsimError, match="no checkpoint"):
        gym.make("worldsim/Mario-v0", checkpoint=tmp_path / "nowhere")
