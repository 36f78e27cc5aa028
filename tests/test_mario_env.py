"""The real Mario env: spaces, preprocessing, labels, seeding and the env checker, on the real emulator."""

import gymnasium as gym
import numpy as np
import pytest
from gym_super_mario_bros import SuperMarioBrosEnv
from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
from gymnasium.utils.env_checker import check_env
from nes_py.wrappers import JoypadSpace
from worldsim.envs.real.mario import MARIO_INFO_KEYS, MarioEnv

from worldsim.errors import WorldsimError


def test_registered_defaults_match_the_dream_contract():
    env = gym.make("worldsim/MarioReal-v0")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(7)
    assert env.unwrapped.get_action_meanings() == ["+".join(b) for b in SIMPLE_MOVEMENT]
    assert env.spec.max_episode_steps == 1000
    observation, info = env.reset(seed=0)
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    assert set(info) == set(MARIO_INFO_KEYS)
    env.close()


def test_env_checker_passes():
    env = gym.make("worldsim/MarioReal-v0", noop_max=30)
    check_env(env.unwrapped)  # made through gym.make so the checker can try each render mode
    env.close()


def test_frame_skip_max_pools_the_last_two_emulator_frames():
    env = MarioEnv(size=(240, 256))  # native size: no resize, so pixels compare exactly
    raw = JoypadSpace(SuperMarioBrosEnv(target=(1, 1)), SIMPLE_MOVEMENT)
    env.reset(seed=0)
    raw.reset()
    for action in [1, 1, 2, 2, 2, 4, 4, 0, 3, 3, 5, 6]:
        frames = [raw.step(action)[0] for _ in range(4)]
        observation = env.step(action)[0]
        np.testing.assert_array_equal(observation, np.maximum(frames[-2], frames[-1]))
    env.close()
    raw.close()


def test_labels_have_fixed_keys_and_dtypes_and_death_ends_the_episode():
    env = MarioEnv()
    env.reset(seed=0)
    terminated = False
    steps = 0
    while not terminated:  # holding right runs into the first goomba
        _, reward, terminated, truncated, info = env.step(1)
        steps += 1
        assert set(info) == set(MARIO_INFO_KEYS)
        assert all(isinstance(info[k], dtype) for k, dtype in MARIO_INFO_KEYS.items())
        assert steps < 500
    assert info["is_dying"] or info["is_dead"]
    assert not info["flag_get"]
    assert reward < 0  # gym-super-mario-bros' death penalty
    assert 200 < info["x_pos"] < 600
    env.close()


def test_same_seed_same_episode_and_seeds_differ_with_noop_starts():
    def episode(seed):
        env = MarioEnv(noop_max=30)
        frames = [env.reset(seed=seed)[0]]
        frames += [env.step(a)[0] for a in [1, 2, 3, 4, 1, 1, 2, 5, 6, 0] * 3]
        env.close()
        return np.stack(frames)

    np.testing.assert_array_equal(episode(3), episode(3))
    assert any(not np.array_equal(episode(3), episode(s)) for s in (4, 5, 6))


def test_configurable_level_action_set_and_size():
    env = gym.make("worldsim/MarioReal-v0", level="1-2", action_set="right_only", size=(84, 96))
    observation, info = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(5)
    assert observation.shape == (84, 96, 3)
    assert (int(info["world"]), int(info["stage"])) == (1, 2)
    env.close()


def test_render_rgb_array_is_the_upscaled_observation():
    env = MarioEnv(render_mode="rgb_array", render_scale=4)
    observation, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[::4, ::4], observation)
    env.close()


@pytest.mark.parametrize("bad", [7, -1, 2.5, "right"])
def test_invalid_action_is_a_clear_error(bad):
    env = MarioEnv()
    env.reset(seed=0)
    with pytest.raises(WorldsimError, match="not in Discrete"):
        env.step(bad)
    env.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"level": "9-1"}, "not a Super Mario Bros level"),
    ({"action_set": "everything"}, "unknown action set"),
    ({"frame_skip": 1}, "frame_skip must be >= 2"),
    ({"render_mode": "ansi"}, "render_mode"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(WorldsimError, match=message):
        MarioEnv(**kwargs)


def test_camera_x_is_the_scroll_read_from_ram():
    """The screen stays put until Mario passes its middle, then scrolls with him: x_pos - camera_x
    (Mario's x on screen) stays within the screen."""
    env = MarioEnv()
    _, info = env.reset(seed=0)
    assert info["camera_x"] == 0
    cameras, on_screen = [], []
    for _ in range(40):
        _, _, terminated, truncated, info = env.step(3)  # right + B
        cameras.append(int(info["camera_x"]))
        on_screen.append(int(info["x_pos"]) - int(info["camera_x"]))
        if terminated or truncated:
            break
    env.close()
    assert cameras[-1] > 100 and all(b >= a for a, b in zip(cameras, cameras[1:], strict=False))
    assert all(0 <= x < 256 for x in on_screen)
