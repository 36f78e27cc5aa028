"""A multi-agent game through the whole pipeline: real Cooperative Pong episodes -> a Minari dataset
with joint actions -> a (tiny) world model trained by ``worldsim train`` -> the dream as a
PettingZoo ``ParallelEnv`` and as a Gymnasium env, and the per-agent evaluation."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected
from worldsim.envs import parallel_env
from worldsim.envs.dream import WorldModelEnv
from worldsim.envs.dream_parallel import DreamParallelEnv

from worldsim.config import load_config
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.errors import WorldsimError
from worldsim.eval.fidelity import evaluate_model
from worldsim.models.world_model import load_world_model
from worldsim.train.world_model_training import train_world_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pettingzoo.test import parallel_api_test

torch.set_num_threads(1)

TINY_MODEL = [
    "model.unet.block_channels=[16,16]",
    "model.unet.norm_groups=8",
    "model.unet.refine_channels=8",
    "model.end_model.channels=[8,8,8,8]",
    "model.end_model.hidden=32",
    "model.end_classifier.channels=[8,8,8]",
    "model.end_classifier.hidden=16",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """600 real steps of the scripted pair and random play, and a tiny model trained on them."""
    collect = ("--env", "coop-pong", "--agent", "scripted-pong:0.5,random:0.5", "--steps", "600", "--seed", "0")
    with collected(tmp_path_factory, "worldsim/coop-pong-test-v0", *collect) as dataset_id:
        yield dataset_id, _train_tiny_model(dataset_id, tmp_path_factory.mktemp("run"))


def _train_tiny_model(dataset_id, out):
    train = load_config(
        "train",
        "coop-pong",
        [
            f"train.data.datasets=[{dataset_id}]",
            "train.data.heldout=null",
            "train.start_states=4",
            "train.denoiser.steps=2",
            "train.denoiser.batch_size=4",
            "train.end_model.steps=2",
            "train.end_model.batch_size=4",
            "train.end_classifier.steps=2",
            "train.end_classifier.batch_size=4",
            "train.end_classifier.validation_every=2",
        ],
    )
    return train_world_model(load_config("model", "coop-pong", TINY_MODEL), train, out, progress=False)


def test_windows_carry_the_joint_action_as_one_index(trained):
    dataset_id, model_folder = trained
    dataset = load_dataset(dataset_id)
    model, _, _ = load_world_model(model_folder)
    game = model.config.game
    assert game.agents == ["paddle_0", "paddle_1"] and game.action_counts == (3, 3) and model.config.num_actions == 9
    episode = dataset[0]
    windows = SequenceDataset(dataset, 2, game.label_keys)
    recorded = np.asarray(episode.actions)  # int[T, 2]
    assert recorded.shape == (len(episode.rewards), 2)
    # frame i of a window pairs with the action that produced it: episode action i - 1
    joint = np.array([windows[i]["actions"][1].item() for i in range(len(episode.rewards))])
    assert np.array_equal(joint, recorded[:, 0] * 3 + recorded[:, 1])
    assert np.array_equal(game.agent_actions(joint), recorded)
    # each agent's own reward is a label the end model learns
    assert {"reward_paddle_0", "reward_paddle_1", "ball_out"} <= set(windows[0])


def test_each_agents_action_has_its_own_embedding(trained):
    model, _, _ = load_world_model(trained[1])
    context = model.denoiser.context
    assert len(context.agent_action_embeddings) == 2 and not hasattr(context, "action_embedding")
    # joint actions (a0, a1) -> features [embed0(a0) x K, embed1(a1) x K]: changing one agent's
    # action changes only its part
    k = model.context_length
    joint = torch.tensor([[1 * 3 + 0] * k, [1 * 3 + 2] * k, [2 * 3 + 0] * k])
    features = context.embed_actions(joint)
    half = features.shape[1] // 2
    assert torch.equal(features[0, :half], features[1, :half]) and not torch.equal(features[0, half:], features[1, half:])
    assert torch.equal(features[0, half:], features[2, half:]) and not torch.equal(features[0, :half], features[2, :half])


def test_dream_is_a_pettingzoo_parallel_env(trained):
    env = DreamParallelEnv(checkpoint=trained[1], device="cpu", max_cycles=40)
    with pytest.warns(UserWarning, match=r"reset options \['options'\] ignored"):  # the API test's dummy options
        parallel_api_test(env, num_cycles=60)
    observations, infos = env.reset(seed=3)
    assert set(observations) == {"paddle_0", "paddle_1"} and observations["paddle_0"].shape == (64, 64, 3)
    assert set(infos["paddle_0"]) == {"ball_out", "end_probabilities"}
    frames = [env.step({"paddle_0": 1, "paddle_1": 2})[0]["paddle_0"] for _ in range(3)]
    env.reset(seed=3)
    again = [env.step({"paddle_0": 1, "paddle_1": 2})[0]["paddle_0"] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True)), "same seed, same frames"
    _, rewards, terminations, truncations, _ = env.step({"paddle_0": 0, "paddle_1": 0})
    assert set(rewards) == set(terminations) == set(truncations) == set(env.possible_agents)
    assert all(isinstance(r, float) for r in rewards.values())


def test_pettingzoo_dream_rejects_bad_actions_in_one_line(trained):
    env = parallel_env("worldsim/CoopPong-dream-v0", checkpoint=trained[1], device="cpu")
    with pytest.raises(WorldsimError, match="call env.reset"):
        env.step({"paddle_0": 0, "paddle_1": 0})
    env.reset(seed=0)
    with pytest.raises(WorldsimError, match="one action for each live agent"):
        env.step({"paddle_0": 0})
    with pytest.raises(WorldsimError, match="of paddle_1 is not in Discrete"):
        env.step({"paddle_0": 0, "paddle_1": 3})
    with pytest.raises(WorldsimError, match="has one player"):
        DreamParallelEnv(device="cpu", shipped="mario-v0")


def test_dream_gymnasium_view_takes_the_joint_action(trained):
    env = gym.make("worldsim/CoopPong-dream-v0", checkpoint=trained[1], device="cpu")
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.utils.env_checker.check_env(env.unwrapped, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    observation, reward, *_ = env.step(np.array([1, 2]))
    assert observation.shape == (64, 64, 3) and isinstance(reward, float)
    with pytest.raises(WorldsimError, match="one per agent"):
        env.step(4)
    # reset from a real context given as joint actions, one row per frame
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    observation, _ = env.reset(options={"frames": frames, "actions": np.array([[0, 0], [1, 2]])})
    assert np.array_equal(observation, frames[-1])
    with pytest.raises(WorldsimError, match=r"int\[2, 2\], one joint action"):
        env.reset(options={"frames": frames, "actions": np.array([0, 5])})
    vector = gym.make_vec("worldsim/CoopPong-dream-v0", num_envs=3, checkpoint=trained[1], device="cpu")
    vector.reset(seed=0)
    observations, rewards, *_ = vector.step(np.array([[0, 1], [1, 2], [2, 0]]))
    assert observations.shape == (3, 64, 64, 3) and rewards.shape == (3,)
    assert isinstance(WorldModelEnv(checkpoint=trained[1], device="cpu").action_space, gym.spaces.MultiDiscrete)


def test_fidelity_reports_each_agents_control(trained):
    dataset_id, model_folder = trained
    model, _, _ = load_world_model(model_folder)
    report = evaluate_model(model, load_dataset(dataset_id), horizon=2, rollouts=4, transitions=16, batch_size=8, progress=False)
    assert set(report.agent_delta_psnr) == {"paddle_0", "paddle_1"}
    assert all(len(values) == 2 and np.isfinite(values).all() for values in report.agent_delta_psnr.values())
    table = report.table()
    assert "only paddle_1's actions random" in table
    assert "miss precision / recall" in table and "death" not in table and "x_pos" not in table  # the game's own rows


def test_shipped_coop_pong_dream_passes_pettingzoo_api_and_follows_the_paddles():
    """The shipped model: the PettingZoo API test, and a dream that moves each paddle the way its
    action says (the frames differ where only one paddle's action differs)."""
    env = parallel_env("worldsim/CoopPong-dream-v0", device="cpu")
    with pytest.warns(UserWarning, match="ignored"):
        parallel_api_test(env, num_cycles=20)
    for agent in env.possible_agents:
        frames = []
        for action in (1, 2):  # up, down for this agent; the other stays
            env.reset(seed=7)
            for _ in range(6):
                observations, *_ = env.step({a: action if a == agent else 0 for a in env.agents})
            frames.append(observations[agent].astype(int))
        column = slice(0, 8) if agent == "paddle_0" else slice(48, 64)  # each paddle's side of the screen
        assert np.abs(frames[0][:, column] - frames[1][:, column]).mean() > 3, f"{agent}'s action does not move its paddle"
