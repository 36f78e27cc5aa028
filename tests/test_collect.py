"""Collecting Minari datasets from real envs: contents, exact step budgets, mixes, resuming, errors."""

import gymnasium as gym
import minari
import numpy as np
import pytest
from worldsim.agents import make_agent
from worldsim.envs.real.mario import MARIO_INFO_KEYS

from worldsim.data.minari_io import load_dataset
from worldsim.errors import WorldsimError
from worldsim.eval.collect import AgentShare, collect_dataset


@pytest.fixture
def mario():
    env = gym.make("worldsim/MarioReal-v0", noop_max=30)
    yield env
    env.close()


def shares(env, **weights):
    return [AgentShare(name, make_agent(name, env), weight) for name, weight in weights.items()]


def test_collected_mario_dataset_reads_back_through_minari(mario, minari_path):
    summary = collect_dataset(mario, shares(mario, scripted=1.0), 300, "worldsim/mario-scripted-v0", progress=False)
    dataset = minari.load_dataset("worldsim/mario-scripted-v0")
    assert dataset.total_steps == 300 == summary.steps
    assert dataset.observation_space == mario.observation_space
    assert dataset.action_space == mario.action_space
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        assert episode.observations.shape == (steps + 1, 64, 64, 3)
        assert episode.observations.dtype == np.uint8
        assert episode.rewards.shape == episode.terminations.shape == episode.truncations.shape == (steps,)
        assert set(episode.infos) == set(MARIO_INFO_KEYS)
        assert episode.infos["x_pos"].shape == (steps + 1,)  # the reset's labels, then one per step
        assert episode.terminations[-1] or episode.truncations[-1]
        assert not (episode.terminations[:-1] | episode.truncations[:-1]).any()  # one episode each
        assert episode.infos["x_pos"][0] < 60  # every episode starts at the level's start
        if episode.terminations[-1]:
            assert episode.infos["is_dying"][-1] or episode.infos["is_dead"][-1] or episode.infos["flag_get"][-1]
    last = dataset[dataset.total_episodes - 1]
    assert last.truncations[-1] and not last.terminations[-1]  # cut by the step budget
    assert not (minari_path / ".staging").exists()


def test_observations_are_stored_losslessly(mario, minari_path):
    collect_dataset(mario, shares(mario, random=1.0), 40, "worldsim/mario-random-v0", progress=False)
    episode = minari.load_dataset("worldsim/mario-random-v0")[0]
    expected = [mario.reset(seed=0)[0]]  # episode k is seeded with seed + k (seed 0)
    expected += [mario.step(int(a))[0] for a in episode.actions]
    np.testing.assert_array_equal(episode.observations, np.stack(expected))


def test_agent_mix_plays_whole_episodes_in_proportion(mario, minari_path):
    summary = collect_dataset(mario, shares(mario, random=0.5, scripted=0.5), 1500, "worldsim/mario-mix-v0", progress=False)
    assert summary.episodes_per_agent["random"] > 0 and summary.episodes_per_agent["scripted"] > 0
    assert sum(summary.episodes_per_agent.values()) == summary.episodes
    assert minari.load_dataset("worldsim/mario-mix-v0").storage.metadata["algorithm_name"] == "random(0.5)+scripted(0.5)"


class Interrupt(Exception):
    pass


class DiesAfter:
    """Wraps an agent and raises after ``steps`` actions, as a kill would stop a collection."""

    def __init__(self, agent, steps):
        self.agent, self.left = agent, steps

    def reset(self, seed=None):
        self.agent.reset(seed)

    def act(self, observation, info=None):
        self.left -= 1
        if self.left < 0:
            raise Interrupt
        return self.agent.act(observation, info)


def test_interrupted_collection_leaves_no_dataset_and_resumes_to_the_same_data(mario, minari_path):
    uninterrupted = collect_dataset(mario, shares(mario, scripted=1.0), 500, "worldsim/mario-a-v0", progress=False)
    assert uninterrupted.steps == 500

    dying = [AgentShare("scripted", DiesAfter(make_agent("scripted", mario), 350), 1.0)]
    with pytest.raises(Interrupt):
        collect_dataset(mario, dying, 500, "worldsim/mario-b-v0", checkpoint_steps=100, progress=False)
    assert not (minari_path / "worldsim" / "mario-b-v0").exists()
    with pytest.raises(WorldsimError, match="no dataset"):
        load_dataset("worldsim/mario-b-v0")

    resumed = collect_dataset(mario, shares(mario, scripted=1.0), 500, "worldsim/mario-b-v0", checkpoint_steps=100, progress=False)
    assert resumed.steps == 500
    a, b = minari.load_dataset("worldsim/mario-a-v0"), minari.load_dataset("worldsim/mario-b-v0")
    assert a.total_episodes == b.total_episodes
    for episode_a, episode_b in zip(a.iterate_episodes(), b.iterate_episodes(), strict=True):
        np.testing.assert_array_equal(episode_a.actions, episode_b.actions)
        np.testing.assert_array_equal(episode_a.observations, episode_b.observations)
    assert not (minari_path / ".staging").exists()


def test_pointmaze_expert_dataset_has_dict_observations_and_success_labels(minari_path):
    env = gym.make("worldsim/PointMaze-UMaze-v0", continuing_task=True, reset_target=True)
    agents = [AgentShare("waypoint", make_agent("waypoint", env, action_noise=0.5), 1.0)]
    collect_dataset(env, agents, 700, "worldsim/pointmaze-umaze-waypoint-v0", progress=False)
    dataset = minari.load_dataset("worldsim/pointmaze-umaze-waypoint-v0")
    assert dataset.total_steps == 700
    assert dataset.total_episodes == 3  # 300-step episodes (the registered D4RL limit), the last cut
    episode = dataset[0]
    assert episode.observations["observation"].shape == (301, 4)
    assert episode.actions.shape == (300, 2) and np.abs(episode.actions).max() <= 1.0
    assert episode.rewards.sum() > 0  # the expert reaches goals
    assert "success" in episode.infos


@pytest.mark.parametrize(
    "steps, dataset_id, message",
    [
        (0, "worldsim/mario-x-v0", "positive number"),
        (-5, "worldsim/mario-x-v0", "positive number"),
        (10, "not a valid id!", "not valid"),
        (10, "worldsim/mario-x", "not valid"),  # no -vN
    ],
)
def test_bad_collection_arguments_fail_before_writing(mario, minari_path, steps, dataset_id, message):
    with pytest.raises(WorldsimError, match=message):
        collect_dataset(mario, shares(mario, random=1.0), steps, dataset_id, progress=False)
    assert not minari_path.exists() or not any(minari_path.rglob("*.hdf5"))


def test_existing_dataset_is_never_overwritten(mario, minari_path):
    collect_dataset(mario, shares(mario, random=1.0), 20, "worldsim/mario-random-v0", progress=False)
    with pytest.raises(WorldsimError, match="already exists"):
        collect_dataset(mario, shares(mario, random=1.0), 20, "worldsim/mario-random-v0", progress=False)
    assert minari.load_dataset("worldsim/mario-random-v0").total_steps == 20


def test_dataset_for_another_env_is_rejected(mario, minari_path):
    collect_dataset(mario, shares(mario, random=1.0), 20, "worldsim/mario-random-v0", progress=False)
    maze = gym.make("worldsim/PointMaze-UMaze-v0")
    with pytest.raises(WorldsimError, match="observation space"):
        load_dataset("worldsim/mario-random-v0", env=maze)
    small = gym.make("worldsim/MarioReal-v0", size=(32, 32))
    with pytest.raises(WorldsimError, match="collect a new dataset"):
        load_dataset("worldsim/mario-random-v0", env=small)


# -- damaged datasets and interrupted collections, as a user meets them ------------------------

MAZE_ID = "worldsim/pointmaze-umaze-waypoint-v0"


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("worldsim: error: "), err
    return lines[0]


def test_truncated_dataset_file_is_one_clear_line(minari_path, capsys):
    from worldsim.cli import main

    assert main(["collect", "--env", "pointmaze-umaze", "--agent", "waypoint", "--steps", "400", "--quiet"]) == 0
    (data_file,) = (minari_path / MAZE_ID / "data").glob("*.hdf5")
    with data_file.open("r+b") as handle:  # a copy cut short: the file holds half its bytes
        handle.truncate(data_file.stat().st_size // 2)
    capsys.readouterr()

    assert main(["dataset", MAZE_ID]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"dataset {MAZE_ID!r} is damaged ({data_file.name}: " in line
    assert f"delete {minari_path / MAZE_ID} and collect it again" in line
    assert "`worldsim collect --env pointmaze-umaze --agent waypoint --steps 400 --seed 0 --dataset-id " + MAZE_ID in line
    with pytest.raises(WorldsimError, match="is damaged"):  # every loader (training, eval) goes through this
        load_dataset(MAZE_ID)


CTRL_C_ON_THEN_CLI = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['worldsim', *sys.argv[1:]]; runpy.run_module('worldsim.cli', run_name='__main__')"
)


def test_ctrl_c_during_collect_then_the_same_command_resumes(minari_path, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    from worldsim.cli import main

    # Default settings (no --checkpoint-steps): episodes are staged every 1000 steps. 10000 steps, so
    # that the Ctrl-C lands before the end even when a loaded machine delays this test by seconds.
    command = ["collect", "--env", "pointmaze-umaze", "--agent", "waypoint", "--steps", "10000", "--quiet"]
    staged = minari_path / ".staging" / MAZE_ID.replace("/", "__") / MAZE_ID / "data" / "metadata.json"
    process = subprocess.Popen(
        # A shell starts background jobs with Ctrl-C ignored, and a child inherits that: the child
        # turns Ctrl-C back on first, so that it hears one however the test suite was launched.
        [sys.executable, "-c", CTRL_C_ON_THEN_CLI, *command],
        env={**os.environ, "MINARI_DATASETS_PATH": str(minari_path), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not staged.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "of 10000 steps" in err and "are staged" in err and "run the same command again to resume" in err
    assert not (minari_path / MAZE_ID).exists()  # nothing half-written under the dataset's id

    # The same dataset id with other arguments would throw the staged episodes away: refused.
    assert main([*command[:-2], "11000", "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds an unfinished collection" in line and "steps (10000 there, 11000 now)" in line and "--discard-staged" in line
    assert staged.exists()

    assert main(command) == 0
    out = capsys.readouterr().out
    assert "resuming " + MAZE_ID in out
    dataset = minari.load_dataset(MAZE_ID)
    assert dataset.total_steps == 10000 and dataset.total_episodes == 34  # 300-step episodes, the last cut
    assert sum(len(episode.actions) for episode in dataset.iterate_episodes()) == 10000
    assert not (minari_path / ".staging").exists()


def test_discard_staged_starts_afresh_over_a_staged_run(minari_path):
    env = gym.make("worldsim/PointMaze-UMaze-v0", continuing_task=True, reset_target=True)
    dying = [AgentShare("waypoint", DiesAfter(make_agent("waypoint", env), 450), 1.0)]
    with pytest.raises(Interrupt):
        collect_dataset(env, dying, 900, MAZE_ID, checkpoint_steps=300, progress=False)
    with pytest.raises(WorldsimError, match=r"other seed \(0 there, 1 now\).*--discard-staged"):
        collect_dataset(env, shares(env, waypoint=1.0), 900, MAZE_ID, seed=1, progress=False)
    summary = collect_dataset(env, shares(env, waypoint=1.0), 600, MAZE_ID, seed=1, discard_staged=True, progress=False)
    assert summary.steps == 600 and minari.load_dataset(MAZE_ID).total_steps == 600


def test_ctrl_c_before_anything_was_staged_says_nothing_was_kept(minari_path):
    from worldsim.eval.collect import CollectionInterrupted

    class CtrlC(DiesAfter):
        def act(self, observation, info=None):
            self.left -= 1
            if self.left < 0:
                raise KeyboardInterrupt
            return self.agent.act(observation, info)

    env = gym.make("worldsim/PointMaze-UMaze-v0", continuing_task=True, reset_target=True)
    with pytest.raises(CollectionInterrupted, match="nothing was kept"):
        collect_dataset(env, [AgentShare("waypoint", CtrlC(make_agent("waypoint", env), 100), 1.0)], 900, MAZE_ID, progress=False)
