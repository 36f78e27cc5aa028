"""Training windows from real Minari episodes: inside one episode, aligned actions, balanced sampling."""

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from worldsim.agents import make_agent

from worldsim.data.sequences import SequenceDataset, WindowWeight
from worldsim.errors import WorldsimError
from worldsim.eval.collect import AgentShare, collect_dataset

LABELS = ("x_pos", "is_dying", "flag_get")


@pytest.fixture
def mario_dataset(minari_path):
    env = gym.make("worldsim/MarioReal-v0", noop_max=30)
    agents = [AgentShare("random", make_agent("random", env), 1.0), AgentShare("scripted", make_agent("scripted", env), 1.0)]
    collect_dataset(env, agents, 400, "worldsim/mario-seq-v0", progress=False)
    env.close()
    return minari.load_dataset("worldsim/mario-seq-v0")


def test_windows_lie_inside_one_episode_each(mario_dataset):
    windows = SequenceDataset(mario_dataset, length=5, label_keys=LABELS)
    lengths = [len(ep.actions) + 1 for ep in mario_dataset.iterate_episodes()]
    assert len(windows) == sum(max(0, n - 5 + 1) for n in lengths)
    episodes = list(mario_dataset.iterate_episodes())
    for index in range(0, len(windows), 7):
        item = windows[index]
        episode_index, start = windows.windows[index]
        np.testing.assert_array_equal(item["frames"].numpy(), episodes[episode_index].observations[start : start + 5])
        assert item["frames"].shape == (5, 64, 64, 3) and item["frames"].dtype == torch.uint8
        assert not item["ends"][:-1].any()  # an episode's end can only be a window's last frame
        assert set(item) == {"frames", "actions", "rewards", "ends", *LABELS}


def test_each_frame_pairs_with_the_action_that_produced_it(mario_dataset):
    windows = SequenceDataset(mario_dataset, length=12)
    episode = windows.episodes[0]
    assert episode.actions[0] == 0 and not episode.ends[0]
    env = gym.make("worldsim/MarioReal-v0", noop_max=30)
    frame, _ = env.reset(seed=0)  # collect_dataset seeds episode k with seed + k
    np.testing.assert_array_equal(frame, episode.frames[0])
    for i in range(1, len(episode.frames)):
        frame, reward, terminated, _, _ = env.step(int(episode.actions[i]))
        np.testing.assert_array_equal(frame, episode.frames[i])
        assert reward == pytest.approx(episode.rewards[i]) and terminated == episode.ends[i]
    env.close()


def test_action_balanced_sampling_evens_out_target_actions(mario_dataset):
    windows = SequenceDataset(mario_dataset, length=3)
    natural = np.bincount(windows.target_actions(), minlength=7) / len(windows)
    sampler = windows.weighted_sampler(30_000, generator=torch.Generator().manual_seed(0))
    drawn = np.bincount(windows.target_actions()[list(sampler)], minlength=7) / 30_000
    present = natural > 0
    assert natural[present].max() > 2 * natural[present].min()  # the agents' own play is unbalanced
    np.testing.assert_allclose(drawn[present], 1 / present.sum(), rtol=0.1)


def test_windows_longer_than_every_episode_are_a_clear_error(mario_dataset):
    with pytest.raises(WorldsimError, match="has 5000 frames"):
        SequenceDataset(mario_dataset, length=5000)
    with pytest.raises(WorldsimError, match="no info labels"):
        SequenceDataset(mario_dataset, length=4, label_keys=("lives_left",))


def test_held_end_windows_run_past_a_terminated_episode_only(mario_dataset):
    plain = SequenceDataset(mario_dataset, length=5, label_keys=LABELS)
    held = SequenceDataset(mario_dataset, length=5, label_keys=LABELS, hold_end=3)
    episodes = plain.episodes
    terminated = [i for i, episode in enumerate(episodes) if episode.ends[-1]]
    assert terminated and len(terminated) < len(episodes)  # a death, and the last episode cut short by the step budget
    assert len(held) == len(plain) + 3 * len(terminated)
    past_end = [i for i, (e, start) in enumerate(held.windows) if start + 5 > len(episodes[e].frames)]
    assert len(past_end) == 3 * len(terminated) and {held.windows[i][0] for i in past_end} == set(terminated)
    for index in past_end:
        episode_index, start = held.windows[index]
        episode, item = episodes[episode_index], held[index]
        inside = len(episode.frames) - start  # frames of the episode in this window; the rest hold its last
        np.testing.assert_array_equal(item["frames"][:inside].numpy(), episode.frames[start:])
        for key, last in [("frames", episode.frames[-1]), ("actions", episode.actions[-1]), ("x_pos", episode.labels["x_pos"][-1])]:
            assert (item[key][inside:].numpy() == last).all()
        assert item["ends"][inside - 1 :].all() and (item["rewards"][inside:] == 0).all()
    assert held.target_ends().sum() == 4 * len(terminated)  # the end step and the 3 held past it
    with pytest.raises(WorldsimError, match="hold_end must be >= 0"):
        SequenceDataset(mario_dataset, length=5, hold_end=-1)


def test_window_weights_draw_a_label_range_that_many_times_as_often(mario_dataset):
    windows = SequenceDataset(mario_dataset, length=3, label_keys=LABELS)
    x_pos = windows._at_last_frame(lambda episode: episode.labels["x_pos"])
    low, high = np.quantile(x_pos, [0.6, 0.8])
    inside = (x_pos >= low) & (x_pos < high)
    rule = WindowWeight("x_pos", float(low), float(high), 5.0)
    sampler = windows.weighted_sampler(40_000, torch.Generator().manual_seed(0), balance_actions=False, label_weights=[rule])
    drawn = inside[list(sampler)].mean()
    expected = 5 * inside.mean() / (5 * inside.mean() + (1 - inside.mean()))
    assert 0.1 < inside.mean() < 0.4 and drawn == pytest.approx(expected, abs=0.02)
    with pytest.raises(WorldsimError, match="names the label 'ball_x'"):
        windows.weighted_sampler(10, label_weights=[WindowWeight("ball_x", 0.0, 1.0, 2.0)])
