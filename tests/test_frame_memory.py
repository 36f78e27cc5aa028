"""The remembering dream: the MiniWorld room, its explorer, and a world model with a causal-S6 memory."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.config import load_config
from worldsim.core.frames import from_uint8
from worldsim.errors import WorldsimError
from worldsim.eval.fidelity import rollout
from worldsim.models.frame_memory import FrameMemory, FrameMemoryConfig
from worldsim.models.world_model import WorldModel, WorldModelConfig
from worldsim.train.world_model_training import DenoiserObjective, return_frames, train_world_model

torch.set_num_threads(1)
# not importorskip: importing MiniWorld before the env sets pyglet headless would look for a display
if importlib.util.find_spec("miniworld") is None:
    pytest.skip("MiniWorld is installed apart: pip install --no-deps miniworld==2.1.0", allow_module_level=True)

TINY_ROOM = [
    "model.unet.block_channels=[16,16]",
    "model.unet.norm_groups=8",
    "model.end_model.channels=[8,8,8,8]",
    "model.end_model.hidden=16",
    "model.memory.width=32",
    "model.memory.encoder_channels=[8,8,8]",
]


def tiny_memory_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    model = WorldModel(WorldModelConfig.from_dict(load_config("model", "room-memory", TINY_ROOM)))
    for layer in (model.memory.readout_map, model.memory.readout_vector, model.denoiser.network.unet.conv_out):
        torch.nn.init.normal_(layer.weight, std=0.05)  # readouts start at zero: give them weights, so memory shows
    return model.eval()


def test_room_turns_exactly_back_and_its_seed_fixes_the_room():
    env = gym.make("worldsim/MiniWorldRoom-v0")
    first, info = env.reset(seed=5)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and set(info) == {"agent_x", "agent_z", "heading"}
    for action in [0] * 6 + [1] * 6:  # 90 degrees left and back
        observation, reward, terminated, _, info = env.step(action)
        assert reward == 0.0 and not terminated
    assert np.array_equal(observation, first)  # the same view: the room did not change while out of sight
    again, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    assert np.array_equal(again, first) and not np.array_equal(other, first)
    env.close()


def test_panorama_turns_are_rolls_and_the_env_passes_gymnasiums_checker():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("worldsim/MiniWorldPanorama-v0")
    check_env(env.unwrapped)
    first, info = env.reset(seed=3)
    assert first.shape == (64, 128, 3) and first.dtype == np.uint8 and {"heading", "box_x", "box_z"} <= set(info)
    columns = env.unwrapped.turn_columns
    assert columns == 8  # 22.5 degrees of 360, 128 columns
    left, *_ = env.step(0)
    error = np.abs(left.astype(int) - np.roll(first, columns, axis=1).astype(int)).mean()
    unrolled = np.abs(left.astype(int) - first.astype(int)).mean()
    assert error < 4 and error < unrolled / 3  # the same ring seen 8 columns on, up to resampling
    # 16 turns make a full circle: the first panorama again, but for rendering noise
    for _ in range(15):
        around, *_ = env.step(0)
    assert np.abs(around.astype(int) - first.astype(int)).mean() < 1
    env.close()
    with pytest.raises(Exception, match="whole number of columns"):
        gym.make("worldsim/MiniWorldPanorama-v0", turn_degrees=20)


def test_explorer_looks_away_and_back(tmp_path):
    from worldsim.agents import make_agent

    env = gym.make("worldsim/MiniWorldRoom-v0")
    agent = make_agent("room-explorer", env, look_back=1.0, max_turn=5)
    agent.reset(seed=0)
    plan = [agent.act(None) for _ in range(2)]
    assert set(agent.plan + plan) <= {0, 1}
    actions = plan + agent.plan
    half = len(actions) // 2
    assert actions[:half] == [actions[0]] * half and actions[half:] == [1 - actions[0]] * half
    env.close()


def test_memory_steps_frame_by_frame_as_it_scans_the_whole_sequence():
    torch.manual_seed(0)
    memory = FrameMemory(
        FrameMemoryConfig(width=32, encoder_channels=(8, 8, 8)), num_actions=4, image_channels=3, image_size=64, embedding_dim=16
    )
    frames, actions = torch.rand(2, 7, 3, 64, 64) * 2 - 1, torch.randint(4, (2, 7))
    whole = memory(frames, actions)
    state = memory.initial_state(2)
    for t in range(7):
        output, state = memory.step(frames[:, t], actions[:, t], state)
        torch.testing.assert_close(output, whole[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("place_phases", [0, 8])
def test_view_bank_recalls_step_by_step_as_over_the_whole_window_and_keeps_its_last_frames(place_phases):
    torch.manual_seed(0)
    config = FrameMemoryConfig(width=32, encoder_channels=(8, 8, 8), view_bank=8, key_size=16, place_phases=place_phases)
    memory = FrameMemory(config, num_actions=4, image_channels=3, image_size=64, embedding_dim=16)
    frames, actions = torch.rand(2, 7, 3, 64, 64) * 2 - 1, torch.randint(4, (2, 7))
    whole = memory(frames, actions)
    targets = torch.tensor([[3, 6], [5, 1]])  # recall before frame t: the bank holds frames 0..t-1
    recalled = memory.recalled_views(memory.window_scores(whole, actions, targets), frames)
    state = memory.initial_state(2)
    for t in range(6):
        output, state = memory.step(frames[:, t], actions[:, t], state)
        for row, column in zip(*torch.nonzero(targets == t + 1, as_tuple=True), strict=True):
            stepped = memory.recalled_view(output, state)[row]
            torch.testing.assert_close(stepped, recalled[row, column], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(recalled[0, 0], recalled[0, 1])  # different banks, different views
    # A view is a softmax mixture of the bank's frames: within their range, and exactly frame 0 when only it is filed.
    torch.testing.assert_close(recalled[1, 1], frames[1, 0])
    # A bank of 4 keeps the last 4 frames, the oldest overwritten first.
    small = FrameMemory(FrameMemoryConfig(width=32, encoder_channels=(8, 8, 8), view_bank=4), 4, 3, 64, 16)
    state = small.initial_state(2)
    for t in range(7):
        state = small.step(frames[:, t], actions[:, t], state)[1]
    assert state["memory_view_count"].tolist() == [7, 7]
    torch.testing.assert_close(state["memory_views"], frames[:, [4, 5, 6, 3]])


def test_untrained_memory_leaves_the_frame_stack_denoiser_unchanged():
    values = load_config("model", "room-memory", TINY_ROOM)
    torch.manual_seed(0)
    remembering = WorldModel(WorldModelConfig.from_dict(values)).eval()
    plain = WorldModel(WorldModelConfig.from_dict({**values, "memory": None})).eval()
    # the same U-Net but for the memory map's input channels, which start at zero weight through the readout
    plain_state = plain.denoiser.state_dict()
    for name, tensor in remembering.denoiser.state_dict().items():
        if name in plain_state and plain_state[name].shape == tensor.shape:
            plain_state[name] = tensor
    first_conv = "network.unet.conv_in.weight"
    fold = 16  # space_to_depth 4: each input channel is 16 channels after the fold
    plain_state[first_conv] = remembering.denoiser.state_dict()[first_conv][:, : plain_state[first_conv].shape[1]]
    plain.denoiser.load_state_dict(plain_state)
    frames, actions = torch.rand(2, 4, 3, 64, 64) * 2 - 1, torch.randint(4, (2, 4))
    noisy, sigma = torch.randn(2, 3, 64, 64), torch.full((2,), 1.0)
    memory = torch.randn(2, remembering.config.memory.width)
    assert remembering.denoiser.network.unet.conv_in.weight.shape[1] == plain.denoiser.network.unet.conv_in.weight.shape[1] + 8 * fold
    torch.testing.assert_close(
        remembering.denoiser.denoise(noisy, sigma, frames, actions, memory=memory), plain.denoiser.denoise(noisy, sigma, frames, actions)
    )
    with pytest.raises(ValueError, match="remembers"):
        remembering.denoiser.denoise(noisy, sigma, frames, actions)


def test_the_dream_carries_its_memory_and_what_it_saw_long_ago_changes_the_frame():
    model = tiny_memory_model()
    torch.manual_seed(1)
    frames = torch.rand(2, 12, 3, 64, 64) * 2 - 1
    actions = torch.randint(4, (2, 12))
    first, _ = rollout(model, frames, actions, horizon=8, generator=torch.Generator().manual_seed(0))
    # only frame 0 differs: it left the 4-frame context before the first step; a frame stack would not notice
    changed = frames.clone()
    changed[:, 0] = -changed[:, 0]
    second, _ = rollout(model, changed, actions, horizon=8, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(first, second)
    # the state has the memory's tensors, batch first, beside the end model's
    state = model.start(frames[:, :4], actions[:, :4])
    assert {"memory_conv", "memory_scan", "h", "c"} <= set(state) and all(value.shape[0] == 2 for value in state.values())


def test_a_dream_that_watched_a_way_out_recalls_it_and_a_frame_stack_only_its_last_frames():
    torch.manual_seed(2)
    frames = torch.rand(2, 14, 3, 64, 64) * 2 - 1
    actions = torch.randint(4, (2, 14))
    changed = frames.clone()
    changed[:, :6] = -changed[:, :6]  # seen among the 10 real frames, before the last 4
    model = tiny_memory_model()
    first, _ = rollout(model, frames, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    second, _ = rollout(model, changed, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    assert first.shape == (2, 4, 3, 64, 64) and not torch.equal(first, second)
    values = load_config("model", "room-memory", TINY_ROOM)
    torch.manual_seed(0)
    stack = WorldModel(WorldModelConfig.from_dict({**values, "memory": None})).eval()
    first, _ = rollout(stack, frames, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    second, _ = rollout(stack, changed, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    # the frame stack starts from the last 4 of the 10 frames, the changed ones are not among them
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="at least the model's K=4"):
        rollout(stack, frames, actions, horizon=4, observed=3)


@pytest.fixture(scope="module")
def room_dataset(tmp_path_factory):
    with collected(
        tmp_path_factory, "worldsim/room-tiny-v0", "--env", "miniworld-room", "--agent", "room-explorer", "--steps", "300"
    ) as dataset_id:
        yield dataset_id


def test_remembering_objective_trains_memory_and_a_run_exports_a_dream(room_dataset, tmp_path):
    model_values = load_config("model", "room-memory", TINY_ROOM)
    train_values = load_config(
        "train",
        "room",
        [
            f"train.data.datasets=[{room_dataset}]",
            "train.data.heldout=null",
            "train.start_states=4",
            "train.denoiser.steps=2",
            "train.denoiser.batch_size=2",
            "train.denoiser.memory_frames=12",
            "train.denoiser.memory_targets=3",
            "train.denoiser.memory_return_targets=0.5",
            "train.end_model.steps=2",
            "train.end_model.batch_size=2",
        ],
    )
    path = train_world_model(model_values, train_values, tmp_path / "run", progress=False)
    assert path is not None and (path / "config.json").is_file()
    env = gym.make("worldsim/Mario-v0", checkpoint=str(path))
    observation, _ = env.reset(seed=0)
    for action in (0, 0, 1, 2):
        observation, _, terminated, _, _ = env.step(action)
    assert observation.shape == (64, 64, 3) and not terminated
    env.close()
    # the return test on it, the dream watching the real way out, with its ablation beside it
    script = Path(__file__).parents[1] / "benchmarks" / "memory_return.py"
    report = tmp_path / "return.json"
    command = [sys.executable, script, f"--checkpoint=memory={path}", "--episodes=2", "--turns=5", "--observe=way-out", f"--json={report}"]
    subprocess.run(command, check=True, capture_output=True)
    results = json.loads(report.read_text())["results"]
    assert set(results) == {"memory", "memory, another room's past", "hold last real frame", "hold mean of real frames"}
    assert all(len(scores["to_real"]) == 5 and np.isfinite(scores["to_real"]).all() for scores in results.values())
    # the loss reaches the memory's scan: gradients flow from the denoised targets into it
    model = tiny_memory_model()
    objective = DenoiserObjective(model, memory_targets=3)
    frames = from_uint8(torch.randint(0, 256, (2, 12, 64, 64, 3), dtype=torch.uint8))
    objective(frames, torch.randint(4, (2, 12)))["denoiser"].backward()
    assert model.memory.scan.in_proj.weight.grad.abs().sum() > 0


def test_a_dream_with_a_view_bank_recalls_what_it_watched_and_its_training_reaches_the_keys():
    values = load_config("model", "room-memory-views", TINY_ROOM)
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig.from_dict(values)).eval()
    torch.nn.init.normal_(model.denoiser.network.unet.conv_out.weight, std=0.05)  # mixture weights that vary
    torch.manual_seed(2)
    frames, actions = torch.rand(2, 14, 3, 64, 64) * 2 - 1, torch.randint(4, (2, 14))
    changed = frames.clone()
    changed[:, :6] = -changed[:, :6]  # watched, before the last 4 frames: only the memory and its bank hold them
    first, _ = rollout(model, frames, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    second, _ = rollout(model, changed, actions, horizon=4, generator=torch.Generator().manual_seed(0), observed=10)
    assert not torch.equal(first, second)
    state = model.start(frames[:, :10], actions[:, :10])
    assert state["memory_views"].shape == (2, 64, 3, 64, 64) and state["memory_view_count"].tolist() == [9, 9]
    # the denoising loss reaches the keys and queries through the recalled view
    objective = DenoiserObjective(model.train(), memory_targets=3, memory_return_targets=0.5)
    window = from_uint8(torch.randint(0, 256, (2, 12, 64, 64, 3), dtype=torch.uint8))
    objective(window, torch.randint(4, (2, 12)))["denoiser"].backward()
    assert model.memory.view_query.weight.grad.abs().sum() > 0 and model.memory.view_key.weight.grad.abs().sum() > 0
    # the mixture must take the view: its candidates are EDM's estimate, 4 frames and the view
    with pytest.raises(Exception, match="mixture_candidates is 5: with model.memory.view_bank"):
        WorldModelConfig.from_dict({**values, "unet": {**values["unet"], "mixture_candidates": 5}})


def test_view_matching_teaches_the_recall_to_pick_the_returned_view_and_top1_copies_it_exactly():
    torch.manual_seed(0)
    views = torch.rand(6, 3, 64, 64) * 2 - 1
    order = [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0]  # a look away and back, as the explorer's
    frames = torch.stack([views[i] for i in order])[None].expand(2, -1, -1, -1, -1)
    actions = torch.tensor([[1] * 5 + [2] * 7, [1] * 5 + [2] * 7])  # turn one way, then back
    config = FrameMemoryConfig(width=32, encoder_channels=(8, 8, 8), view_bank=16, key_size=16)
    memory = FrameMemory(config, num_actions=4, image_channels=3, image_size=64, embedding_dim=16)
    targets = torch.tensor([[8, 9, 10]] * 2)  # views 2, 1, 0: seen at t = 2, 1, 0, beyond a 4-frame context
    wanted = frames[:, [8, 9, 10]]
    optimizer = torch.optim.Adam(memory.parameters(), lr=3e-3)
    for step in range(60):
        loss = memory.view_match_loss(memory.window_scores(memory(frames, actions), actions, targets), frames, wanted)
        if step == 0:
            first = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 1.0 and loss.item() < 0.1 * first  # from a guess among 8-10 frames to the right one
    memory.config.recall_temperature = 0.0  # top-1: the bank's frame itself, no blend of others
    recalled = memory.recalled_views(memory.window_scores(memory(frames, actions), actions, targets), frames)
    torch.testing.assert_close(recalled, wanted, rtol=0, atol=0)
    # the objective adds the loss when asked, and it reaches the keys; without a bank training refuses it
    model = WorldModel(WorldModelConfig.from_dict(load_config("model", "room-memory-views", TINY_ROOM)))
    objective = DenoiserObjective(model, memory_targets=3, memory_return_targets=0.5, memory_view_match=True)
    window = from_uint8(torch.randint(0, 256, (2, 12, 64, 64, 3), dtype=torch.uint8))
    losses = objective(window, torch.randint(4, (2, 12)))
    assert set(losses) == {"denoiser", "memory_views"}
    losses["memory_views"].backward()
    assert model.memory.view_key.weight.grad.abs().sum() > 0
    with pytest.raises(WorldsimError, match="recall_temperature is -1.0"):
        WorldModelConfig.from_dict(load_config("model", "room-memory-views", [*TINY_ROOM, "+model.memory.recall_temperature=-1"]))


def test_a_place_from_the_actions_recalls_the_returned_view_whatever_the_frames_show():
    # Keys read from the frames cannot find a view again when the frames change (a dream's are dreamed);
    # a place integrated from the actions alone can: trained on one room's look away and back, it
    # picks the same view in a room of other frames, and in the dream's step form as in the window's.
    torch.manual_seed(0)
    order = [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0]
    actions = torch.tensor([[1] * 5 + [2] * 7])  # turn one way (1), then back (2)
    config = FrameMemoryConfig(width=32, encoder_channels=(8, 8, 8), view_bank=16, key_size=16, place_phases=8)
    memory = FrameMemory(config, num_actions=4, image_channels=3, image_size=64, embedding_dim=16)
    targets = torch.tensor([[6, 7, 8, 9, 10]])  # views 4, 3, 2, 1, 0
    trained = [memory.place_step.weight, memory.place_weight]  # the place alone: the frame keys stay untrained
    optimizer = torch.optim.Adam(trained, lr=3e-2)

    def room() -> torch.Tensor:
        views = torch.rand(6, 3, 64, 64) * 2 - 1
        return torch.stack([views[i] for i in order])[None]

    frames = room()
    for _ in range(150):
        loss = memory.view_match_loss(memory.window_scores(memory(frames, actions), actions, targets), frames, frames[:, targets[0]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    other = room()  # new frames: the frame keys score them afresh, the place the same
    memory.config.recall_temperature = 0.0
    picks = memory.window_scores(memory(other, actions), actions, targets).argmax(-1)
    assert picks.tolist() == [[4, 3, 2, 1, 0]]
    state = memory.initial_state(1)
    for t in range(10):
        output, state = memory.step(other[:, t], actions[:, t], state)
    torch.testing.assert_close(memory.recalled_view(output, state), other[:, 0], rtol=0, atol=0)  # before frame 10: view 0


def test_a_place_without_a_view_bank_is_refused():
    values = load_config("model", "room-memory", TINY_ROOM)
    with pytest.raises(WorldsimError, match="model.memory.place_phases is 4: .* with model.memory.view_bank > 0"):
        WorldModelConfig.from_dict({**values, "memory": {**values["memory"], "place_phases": 4}})
    views = load_config("model", "room-memory-places", TINY_ROOM)
    assert WorldModelConfig.from_dict(views).to_dict()["memory"]["place_phases"] == 16
    assert "place_phases" not in WorldModelConfig.from_dict(values).to_dict()["memory"]  # configs saved before it read back unchanged


def test_view_matching_without_a_view_bank_is_refused(room_dataset, tmp_path):
    overrides = [f"train.data.datasets=[{room_dataset}]", "train.data.heldout=null", "train.denoiser.memory_view_match=true"]
    with pytest.raises(WorldsimError, match="memory_view_match trains the recall from a view bank"):
        train_world_model(
            load_config("model", "room-memory", TINY_ROOM), load_config("train", "room", overrides), tmp_path / "run", progress=False
        )
    assert not (tmp_path / "run").exists()


def test_a_view_bank_smaller_than_the_training_window_is_refused(room_dataset, tmp_path):
    model_values = load_config("model", "room-memory-views", [*TINY_ROOM, "model.memory.view_bank=8"])
    overrides = [f"train.data.datasets=[{room_dataset}]", "train.data.heldout=null", "train.denoiser.memory_frames=12"]
    with pytest.raises(WorldsimError, match="view_bank is 8: training recalls from up to 11 frames"):
        train_world_model(model_values, load_config("train", "room", overrides), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before any phase trained or wrote


def test_recall_loss_trains_the_memory_to_redraw_old_frames():
    values = load_config("model", "room-memory-recall", TINY_ROOM)
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig.from_dict(values))
    assert model.config.memory.recall_lags == (4, 8, 12, 16)
    objective = DenoiserObjective(model, memory_targets=2)
    frames = from_uint8(torch.randint(0, 256, (2, 10, 64, 64, 3), dtype=torch.uint8))
    losses = objective(frames, torch.randint(4, (2, 10)))
    assert set(losses) == {"denoiser", "memory_recall"} and losses["memory_recall"] > 0  # lags 4 and 8 fit in 9 seen frames
    losses["memory_recall"].backward()
    assert model.memory.scan.in_proj.weight.grad.abs().sum() > 0 and model.memory.recall_heads[0].weight.grad.abs().sum() > 0
    assert model.memory.recall_heads[3].weight.grad is None  # lag 16: longer than the window


def test_return_targets_are_the_views_only_a_memory_can_know_and_are_drawn_first():
    k = 4
    views = torch.rand(6, 3, 64, 64) * 2 - 1
    # a look away and back: views 0 1 2 3 4 5 4 3 2 1 0, then 0 again (in its context) and a new view
    order = [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0]
    frames = torch.stack([views[i] for i in order])[None]
    returns = return_frames(frames, k)[0].tolist()
    # t=6 (view 4) and t=7 (view 3) are in their context; t=8 (view 2, last at t=2, lag 6) onward return from beyond it
    assert returns == [False] * 8 + [True, True, True, False]
    model = tiny_memory_model()
    objective = DenoiserObjective(model, memory_targets=2, memory_return_targets=1.0)
    torch.manual_seed(0)
    draws = torch.cat([objective._draw_targets(frames.expand(64, -1, -1, -1, -1)) for _ in range(4)])
    assert set(draws.flatten().tolist()) == {8, 9, 10}
    half = DenoiserObjective(model, memory_targets=2, memory_return_targets=0.5)._draw_targets(frames.expand(256, -1, -1, -1, -1))
    assert ((half >= 8) & (half <= 10)).any(dim=1).all()  # one return in every window, the other drawn from all
    assert (half < 8).any()
