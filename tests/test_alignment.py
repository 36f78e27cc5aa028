"""Reward-gradient alignment: LoRA adapters, truncated backprop through sampling, rewards, aligners, ``worldsim align``.

Everything runs on tiny models built here (a random world model of the Mario architecture at a
fraction of its width, random reward nets), except the real-frame checks of Mario's screen position
and the reward nets' training tasks, which use a few hundred real emulator steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected
from worldsim.agents.lora_alignment import RewardGradientAligner
from worldsim.agents.policy_gradient_alignment import PolicyGradientAligner

from worldsim.cli import main
from worldsim.config import load_config
from worldsim.core.checkpoint import save_checkpoint, shipped_checkpoint
from worldsim.core.frames import degrade, from_uint8
from worldsim.errors import WorldsimError
from worldsim.eval.alignment import evaluate_rewards, evaluation_contexts
from worldsim.models.inverse_dynamics import InverseDynamicsConfig, InverseDynamicsModel
from worldsim.models.lora import (
    LoraSettings,
    adapters_disabled,
    add_lora,
    apply_adapter,
    lora_parameters,
    read_adapter,
    save_adapter,
    weights_fingerprint,
)
from worldsim.models.world_model import START_STATES_FILE, StartStates, WorldModel, WorldModelConfig, load_world_model
from worldsim.rewards import RewardSet, Scores, Transition, per_sample
from worldsim.rewards.consistency import ConsistencyReward
from worldsim.rewards.presence import PlayerDetector, PlayerDetectorConfig, PresenceReward, mario_screen_position
from worldsim.rewards.realism import RealismCritic, RealismCriticConfig, RealismReward
from worldsim.rewards.scroll import ScrollReward

TINY_MODEL = [
    "model.unet.block_channels=[16,16]",
    "model.unet.norm_groups=8",
    "model.unet.space_to_depth=4",
    "model.unet.refine_channels=8",
    "model.end_model.channels=[8,8,8,8]",
    "model.end_model.hidden=32",
    "model.sampler.sigmas=[5.0,1.0,0.25]",  # three sampling steps, so that truncation has steps to cut
]


def tiny_world_model(seed: int) -> WorldModel:
    torch.manual_seed(seed)
    model = WorldModel(WorldModelConfig.from_dict(load_config("model", "mario", TINY_MODEL)))
    # the output convs start at zero (the model copies its last frame); give them weights, so that
    # gradients reach every LoRA factor and frames depend on the adapter
    for conv in (model.denoiser.network.unet.conv_out, model.denoiser.network.refine[-1]):
        torch.nn.init.normal_(conv.weight, std=0.05)
    return model.eval()


def save_world_model(path, model: WorldModel):
    rng = np.random.default_rng(0)
    starts = StartStates(rng.integers(0, 256, (4, 4, 64, 64, 3), dtype=np.uint8), np.zeros((4, 4), np.int64), np.zeros(4))
    save_checkpoint(path, model, {"model": model.config.to_dict()}, files={START_STATES_FILE: starts.save_bytes()})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny world models (different weights, same architecture) and a tiny realism critic."""
    root = tmp_path_factory.mktemp("alignment")
    critic = RealismCritic(RealismCriticConfig(channels=[8, 8, 8, 8], hidden=16))
    save_checkpoint(root / "critic", critic, {"kind": "realism_critic", "critic": {"channels": [8, 8, 8, 8], "hidden": 16}})
    return {
        "base": save_world_model(root / "base", tiny_world_model(0)),
        "other": save_world_model(root / "other", tiny_world_model(1)),
        "critic": root / "critic",
    }


def tiny_batch(batch: int = 3, history: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    frames = torch.rand((batch, history, 3, 64, 64), generator=generator) * 2 - 1
    actions = torch.randint(0, 7, (batch, history), generator=generator)
    return frames, actions


class Brightness(torch.nn.Module):
    """A toy reward for the learning tests: the generated frame's mean value."""

    name, history_frames = "brightness", 1

    def score(self, transition: Transition) -> Scores:
        values = transition.next_frame.mean(dim=(1, 2, 3))
        return Scores(values, torch.ones_like(values, dtype=torch.bool))


# ----------------------------------------------------------------------------- LoRA, truncation


def test_gradients_stop_at_the_cutoff_and_reach_only_the_lora(checkpoints):
    model, _, _ = load_world_model(checkpoints["base"])
    parameters = add_lora(model, LoraSettings(rank=4))
    lora_names = {name for name, _ in model.named_parameters() if ".lora_" in name}
    assert {name for name, p in model.named_parameters() if p.requires_grad} == lora_names
    calls = []
    denoise = model.denoiser.denoise

    def recording(noisy, sigma, frames, actions, *rest):
        out = denoise(noisy, sigma, frames, actions, *rest)
        calls.append((noisy.requires_grad, out.requires_grad))
        return out

    model.denoiser.denoise = recording
    frames, actions = tiny_batch(2, 4)
    for grad_steps in (1, 2):
        calls.clear()
        model.zero_grad(set_to_none=True)
        next_frame = model.sampler.sample(
            model.denoiser, frames, actions, generator=torch.Generator().manual_seed(0), grad_steps=grad_steps
        )
        cutoff = 3 - grad_steps
        # steps before the cutoff run without gradients; the first step with them starts from a
        # sample that carries none (the graph is cut there)
        assert [out for _, out in calls] == [index >= cutoff for index in range(3)]
        assert [inp for inp, _ in calls] == [index > cutoff for index in range(3)]
        next_frame.square().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in parameters)
        assert any(p.grad.abs().sum() > 0 for p in parameters)
        assert all(p.grad is None for name, p in model.named_parameters() if name not in lora_names)
    with torch.no_grad():  # grad_steps=0: no graph at all
        assert not model.sampler.sample(model.denoiser, frames, actions, grad_steps=0).requires_grad


def base_weights(model: WorldModel) -> dict[str, torch.Tensor]:
    """The model's weights other than LoRA's, by their names without an adapter."""
    return {name.replace(".base_layer", ""): value for name, value in model.state_dict().items() if ".lora_" not in name}


def perturb_lora(model: WorldModel, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in lora_parameters(model):
            parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))


def test_adapter_round_trip_merge_and_env_loading(checkpoints, tmp_path):
    model, _, _ = load_world_model(checkpoints["base"])
    fingerprint = weights_fingerprint(model)
    add_lora(model, LoraSettings(rank=4))
    perturb_lora(model)
    frames, actions = tiny_batch(2, 4)
    sigma = torch.full((2,), 1.0)
    noisy = torch.randn((2, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unmerged = model.denoiser.denoise(noisy, sigma, frames, actions)
        unmerged_frames = model.sampler.sample(model.denoiser, frames, actions, generator=torch.Generator().manual_seed(2))
        with adapters_disabled(model):
            base = model.denoiser.denoise(noisy, sigma, frames, actions)
    assert (unmerged - base).abs().max() > 1e-3  # the adapter changes the frames
    save_adapter(tmp_path / "adapter", model, LoraSettings(rank=4), fingerprint)
    assert read_adapter(tmp_path / "adapter").base_fingerprint == fingerprint

    for merge in (False, True):
        loaded, _, _ = load_world_model(checkpoints["base"])
        apply_adapter(loaded, tmp_path / "adapter", merge=merge)
        assert not any(".lora_" in name for name, _ in loaded.named_parameters()) if merge else lora_parameters(loaded)
        with torch.no_grad():
            torch.testing.assert_close(loaded.denoiser.denoise(noisy, sigma, frames, actions), unmerged, atol=1e-4, rtol=1e-4)
            again = loaded.sampler.sample(loaded.denoiser, frames, actions, generator=torch.Generator().manual_seed(2))
        assert (again - unmerged_frames).abs().max() <= 1.01 / 127.5  # at most one 8-bit level, where rounding ties flip

    # the dream envs load it merged: the same weights as merged by hand
    merged_state = {name: value for name, value in loaded.state_dict().items()}
    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], adapter=tmp_path / "adapter", device="cpu")
    vector = gym.make_vec("worldsim/Mario-v0", num_envs=2, checkpoint=checkpoints["base"], adapter=tmp_path / "adapter", device="cpu")
    for dream in (env, vector):
        state = dream.unwrapped.engine.model.state_dict()
        assert all(torch.equal(state[name], value) for name, value in merged_state.items())
        dream.reset(seed=0)
        dream.step(dream.action_space.sample())
        dream.close()


def test_an_adapter_merged_at_a_scale_moves_the_weights_that_fraction_of_the_way(checkpoints, tmp_path):
    """``scale`` (diffusers' ``lora_scale``): 0 is the base model, 1 the adapter, 0.5 exactly half of
    each weight's update; the envs pass it through; a negative scale is one error."""
    model, _, _ = load_world_model(checkpoints["base"])
    fingerprint = weights_fingerprint(model)
    add_lora(model, LoraSettings(rank=4))
    perturb_lora(model)
    save_adapter(tmp_path / "adapter", model, LoraSettings(rank=4), fingerprint)

    def merged(scale: float) -> dict[str, torch.Tensor]:
        loaded, _, _ = load_world_model(checkpoints["base"])
        apply_adapter(loaded, tmp_path / "adapter", scale=scale)
        return loaded.state_dict()

    base, full, half, none = load_world_model(checkpoints["base"])[0].state_dict(), merged(1.0), merged(0.5), merged(0.0)
    changed = [name for name in base if not torch.equal(base[name], full[name])]
    assert changed  # the adapter moves some weights
    for name in changed:
        torch.testing.assert_close(half[name], base[name] + 0.5 * (full[name] - base[name]), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(none[name], base[name], atol=1e-7, rtol=0)
    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], adapter=tmp_path / "adapter", adapter_scale=0.5, device="cpu")
    assert all(torch.equal(env.unwrapped.engine.model.state_dict()[name], half[name]) for name in changed)
    env.close()
    with pytest.raises(WorldsimError, match="adapter scale must be a number >= 0"):
        apply_adapter(load_world_model(checkpoints["base"])[0], tmp_path / "adapter", scale=-1.0)


def test_an_adapter_limited_to_low_noise_levels_acts_only_there(checkpoints, tmp_path):
    """``sigma_max``: above it the base network denoises, at or below it the adapter merged as
    usual; a batch across the switch takes each sample's own; the envs pass it through."""
    model, _, _ = load_world_model(checkpoints["base"])
    fingerprint = weights_fingerprint(model)
    add_lora(model, LoraSettings(rank=4))
    perturb_lora(model)
    save_adapter(tmp_path / "adapter", model, LoraSettings(rank=4), fingerprint)
    base, _, _ = load_world_model(checkpoints["base"])
    merged, _, _ = load_world_model(checkpoints["base"])
    apply_adapter(merged, tmp_path / "adapter")
    late, _, _ = load_world_model(checkpoints["base"])
    apply_adapter(late, tmp_path / "adapter", sigma_max=1.0)
    frames, actions = tiny_batch(2, 4)
    noisy = torch.randn((2, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for level, expected in ((5.0, base), (1.0, merged), (0.25, merged)):
            sigma = torch.full((2,), level)
            torch.testing.assert_close(
                late.denoiser.denoise(noisy, sigma, frames, actions),
                expected.denoiser.denoise(noisy, sigma, frames, actions),
                atol=0,
                rtol=0,
            )
        across = torch.tensor([5.0, 0.25])
        out = late.denoiser.denoise(noisy, across, frames, actions)
        torch.testing.assert_close(out[0], base.denoiser.denoise(noisy, across, frames, actions)[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(out[1], merged.denoiser.denoise(noisy, across, frames, actions)[1], atol=1e-6, rtol=0)
    assert weights_fingerprint(late.denoiser.network) == weights_fingerprint(base.denoiser.network)  # the base network is untouched
    options = {"checkpoint": checkpoints["base"], "adapter": tmp_path / "adapter", "adapter_sigma_max": 1.0, "device": "cpu"}
    for dream in (gym.make("worldsim/Mario-v0", **options), gym.make_vec("worldsim/Mario-v0", num_envs=2, **options)):
        denoiser = dream.unwrapped.engine.model.denoiser
        assert denoiser.low_noise_sigma_max == 1.0 and denoiser.low_noise_network is not None
        dream.reset(seed=0)
        dream.step(dream.action_space.sample())
        dream.close()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(WorldsimError, match="adapter sigma_max must be a noise level > 0"):
            apply_adapter(load_world_model(checkpoints["base"])[0], tmp_path / "adapter", sigma_max=bad)
    with pytest.raises(WorldsimError, match="use merge=True"):
        apply_adapter(load_world_model(checkpoints["base"])[0], tmp_path / "adapter", sigma_max=1.0, merge=False)


def test_an_adapter_on_another_base_is_one_error(checkpoints, tmp_path):
    model, _, _ = load_world_model(checkpoints["base"])
    fingerprint = weights_fingerprint(model)
    add_lora(model, LoraSettings(rank=2))
    save_adapter(tmp_path / "adapter", model, LoraSettings(rank=2), fingerprint)
    other, _, _ = load_world_model(checkpoints["other"])
    with pytest.raises(WorldsimError, match="trained on another world model") as error:
        apply_adapter(other, tmp_path / "adapter")
    assert "\n" not in str(error.value)
    with pytest.raises(WorldsimError, match="trained on another world model"):
        gym.make("worldsim/Mario-v0", checkpoint=checkpoints["other"], adapter=tmp_path / "adapter", device="cpu")
    with pytest.raises(WorldsimError, match="holds a world model, not a LoRA adapter"):
        apply_adapter(other, checkpoints["base"])


# ----------------------------------------------------------------------------- rewards


def test_each_reward_scores_tiny_transitions_differentiably():
    torch.manual_seed(0)
    rewards = {
        "realism": RealismReward(RealismCritic(RealismCriticConfig(channels=[8, 8, 8, 8], hidden=16))),
        "presence": PresenceReward(PlayerDetector(PlayerDetectorConfig(channels=[8, 8], dilations=[1, 2])), seen=0.0),
        "consistency": ConsistencyReward(InverseDynamicsModel(InverseDynamicsConfig(channels=[8, 8, 8, 8], hidden=16))),
        "scroll": ScrollReward(),
    }
    history, history_actions = tiny_batch(3, 5)
    history_actions[0, -3:] = 4  # sample 0 held action 4 for three steps: the probe can read it
    for name, reward in rewards.items():
        next_frame = (torch.rand((3, 3, 64, 64)) * 2 - 1).requires_grad_()
        scores = reward.score(Transition(history, history_actions, torch.tensor([4, 4, 4]), next_frame))
        assert scores.values.shape == scores.valid.shape == (3,) and scores.valid.dtype == torch.bool, name
        assert torch.isfinite(scores.values).all(), name
        per_sample({name: scores}, {name: 1.0}).mean().backward()
        assert torch.isfinite(next_frame.grad).all() and next_frame.grad.abs().sum() > 0, name
    consistency = rewards["consistency"].score(Transition(history, history_actions, torch.tensor([4, 4, 4]), torch.zeros(3, 3, 64, 64)))
    assert consistency.valid.tolist() == [True, False, False]  # only a held action is the probe's question


def test_a_degrading_critic_is_blind_to_grain_and_still_passes_gradients():
    """blur 1 px + 16 levels: a frame and the same frame with faint grain read alike; the rounding
    passes the generator's gradient straight through."""
    torch.manual_seed(0)
    frames = torch.full((1, 3, 64, 64), -0.6)
    frames[..., 20:40, 10:30] = 0.6  # a flat block on a flat field (both on a level of 16): a sprite on the sky
    grain = 0.02 * torch.randn_like(frames)
    sharp, degraded = degrade(frames + grain), degrade(frames + grain, blur=1.0, levels=16)
    assert (sharp - frames).abs().mean() > 0.01
    assert (degraded - degrade(frames, blur=1.0, levels=16)).abs().mean() < 0.01
    torch.testing.assert_close(degrade(torch.full((1, 3, 8, 8), 0.2), blur=1.0), torch.full((1, 3, 8, 8), 0.2))  # a constant stays
    critic = RealismCritic(RealismCriticConfig(channels=[8, 8, 8, 8], hidden=16, blur=1.0, levels=16))
    next_frame = (frames + grain).requires_grad_()
    critic(frames, next_frame).sum().backward()
    assert torch.isfinite(next_frame.grad).all() and next_frame.grad.abs().sum() > 0


def test_per_sample_fills_undefined_rewards_with_their_mean():
    scores = {
        "a": Scores(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([True, True, False])),
        "b": Scores(torch.tensor([2.0, 2.0, 2.0]), torch.ones(3, dtype=torch.bool)),
    }
    total = per_sample(scores, {"a": 1.0, "b": 0.5})
    torch.testing.assert_close(total, torch.tensor([2.0, 4.0, 3.0]))
    assert total.mean() == pytest.approx(2.0 + 1.0)  # each reward's mean over its valid samples, weighted


def test_mario_screen_position_lands_on_mario_in_real_frames():
    env = gym.make("worldsim/MarioReal-v0")
    observation, info = env.reset(seed=3)
    sky = np.array([104, 136, 252])
    on_mario, above = [], []
    for step in range(80):
        column, row = mario_screen_position(info["x_pos"], info["y_pos"], info["camera_x"])
        for shift, found in ((0, on_mario), (-6, above)):
            r, c = int(row) + shift, int(column)
            window = observation[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].astype(int)
            found.append(bool((np.abs(window - sky).sum(-1) > 60).any()))
        observation, _, terminated, truncated, info = env.step(4 if step % 12 < 6 else 3)  # run right, jumping
        if terminated or truncated:
            break
    env.close()
    assert np.mean(on_mario) >= 0.9 and np.mean(above) <= 0.3, (np.mean(on_mario), np.mean(above))


# ----------------------------------------------------------------------------- aligners


def test_the_aligner_raises_its_reward_and_changes_only_the_adapter(checkpoints, tmp_path):
    env = gym.make_vec("worldsim/Mario-v0", num_envs=2, checkpoint=checkpoints["base"], device="cpu")
    model = env.unwrapped.engine.model
    before_weights = {name: value.clone() for name, value in base_weights(model).items()}
    rewards = RewardSet({"brightness": Brightness()}, {"brightness": 1.0})
    aligner = RewardGradientAligner(
        env, reward_set=rewards, behaviour="random", batch_size=4, grad_steps=2, cutoff="random", lr=1e-2, lora={"rank": 4}, seed=0
    )
    contexts, _ = evaluation_contexts(model, env.unwrapped.engine.start_states, 1, 8, seed=0)
    with adapters_disabled(model):
        base_reward = evaluate_rewards(model, rewards, contexts, seed=0)["total"]
    aligner.learn(env, 6, run_dir=tmp_path / "run")
    assert aligner.updates == 6 and {row["grad_steps"] for row in aligner.curve} <= {1, 2}
    assert evaluate_rewards(model, rewards, contexts, seed=0)["total"] > base_reward + 0.01
    after = base_weights(model)
    assert after.keys() == before_weights.keys()
    changed = [name for name, value in before_weights.items() if not torch.equal(after[name], value)]
    assert not changed, f"base weights changed: {changed[:3]}"
    assert any(p.abs().sum() > 0 for name, p in model.named_parameters() if ".lora_B" in name)

    # Resuming: a new aligner on a new env continues the run from its checkpoint, to 8 updates.
    env.close()
    env = gym.make_vec("worldsim/Mario-v0", num_envs=2, checkpoint=checkpoints["base"], device="cpu")
    resumed = RewardGradientAligner(
        env, reward_set=rewards, behaviour="random", batch_size=4, grad_steps=2, cutoff="random", lr=1e-2, lora={"rank": 4}, seed=0
    )
    resumed.learn(env, 8, run_dir=tmp_path / "run")
    assert resumed.updates == 8 and len((tmp_path / "run" / "curve.csv").read_text().splitlines()) == 9
    assert read_adapter(tmp_path / "run" / "adapter").checkpoint.training_state["updates"] == 8
    env.close()
    env = gym.make_vec("worldsim/Mario-v0", num_envs=2, checkpoint=checkpoints["base"], device="cpu")
    other = RewardGradientAligner(env, reward_set=rewards, behaviour="random", batch_size=4, grad_steps=1, lora={"rank": 4})
    with pytest.raises(WorldsimError, match="other aligner settings"):
        other.learn(env, 9, run_dir=tmp_path / "run")
    env.close()


def test_the_policy_gradient_baseline_trains_the_same_adapter(checkpoints, tmp_path):
    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")  # a single dream, tiled to the batch
    rewards = RewardSet({"brightness": Brightness()}, {"brightness": 1.0})
    baseline = PolicyGradientAligner(env, reward_set=rewards, behaviour="random", batch_size=4, lora={"rank": 4}, lr=1e-2, exploration=0.1)
    base = {name: value.clone() for name, value in env.unwrapped.engine.model.state_dict().items() if ".lora_" not in name}
    baseline.learn(env, 3)
    assert baseline.updates == 3 and all(np.isfinite(row["grad_norm"]) for row in baseline.curve)
    state = env.unwrapped.engine.model.state_dict()
    assert all(torch.equal(state[name], value) for name, value in base.items())
    assert any(p.abs().sum() > 0 for name, p in env.unwrapped.engine.model.named_parameters() if ".lora_B" in name)
    baseline.save(tmp_path / "adapter")
    assert read_adapter(tmp_path / "adapter").info["aligner"]["exploration"] == 0.1
    env.close()


def test_the_driver_keeps_each_dreams_history(checkpoints):
    from worldsim.agents import make_agent
    from worldsim.agents.dream_driver import DreamDriver

    env = gym.make_vec("worldsim/Mario-v0", num_envs=2, checkpoint=checkpoints["base"], device="cpu")
    engine = env.unwrapped.engine
    driver = DreamDriver(env, lambda view: make_agent("scripted", view), history_frames=6, seed=0)
    assert driver.history.shape[:2] == (2, 6) and torch.equal(driver.history[:, -4:], engine.frames)
    assert torch.equal(driver.history[:, 0], driver.history[:, 2])  # a fresh episode repeats its first frame
    for _ in range(3):
        actions = driver.actions()
        context = driver.context(actions)
        assert torch.equal(context["actions"][:, -1], torch.as_tensor(actions)) and torch.equal(context["frames"], engine.frames)
        driver.step(actions)
        assert torch.equal(driver.history[:, -4:], engine.frames) and torch.equal(driver.history_actions[:, -4:], engine.actions)
    assert driver.steps == 3
    driver.restart()
    assert driver.steps == 0 and torch.equal(driver.history[:, -4:], engine.frames)
    env.close()


# ----------------------------------------------------------------------------- the command


def test_worldsim_align_end_to_end(checkpoints, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--steps", "2", "--dreams", "2", "--eval-contexts", "4", "--quiet", f"env.kwargs.checkpoint={checkpoints['base']}", "env.kwargs.device=cpu",
              f"realism.path={checkpoints['critic']}", "aligner.batch_size=2"]  # fmt: skip
    assert main(["align", "--env", "mario-dream", "--reward", "realism", "--out", str(out), *common]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "reward_gradient" and report["reward_queries"] == 4 and set(report["after"]) == {"total", "realism"}
    assert {path.name for path in out.iterdir()} >= {"adapter", "model", "curve.csv", "report.json"}
    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], adapter=out / "adapter", device="cpu")
    merged, _, _ = load_world_model(out / "model")  # the merged export is a plain world model
    assert all(torch.equal(merged.state_dict()[name], value) for name, value in env.unwrapped.engine.model.state_dict().items())
    env.close()

    assert main(["align", "--reward", "realism", "--baseline", "policy-gradient", "--out", str(tmp_path / "ddpo"), *common]) == 0
    assert json.loads((tmp_path / "ddpo" / "report.json").read_text())["method"] == "policy_gradient"

    capsys.readouterr()
    assert main(["align", "--reward", "realism+beauty", "--steps", "1", "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unknown reward 'beauty'" in error and not (tmp_path / "bad").exists()
    missing = tmp_path / "no-detector"
    code = main(["align", "--reward", "presence", "--steps", "1", "--out", str(tmp_path / "bad"),
                 f"env.kwargs.checkpoint={checkpoints['base']}", f"presence.path={missing}"])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and str(missing) in error and not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- the reward nets' training tasks


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory):
    """120 real steps of the scripted runner (with camera_x) as a Minari dataset."""
    with collected(
        tmp_path_factory, "worldsim/mario-align-tiny-v0", "--env", "mario", "--agent", "scripted", "--steps", "120"
    ) as dataset_id:
        yield dataset_id


def test_reward_nets_train_resume_and_load(real_dataset, checkpoints, tmp_path):
    from worldsim.rewards.presence import load_presence_reward
    from worldsim.rewards.realism import load_realism_reward
    from worldsim.train.tasks import train_model

    common = [f"train.datasets=[{real_dataset}]", f"train.heldout={real_dataset}", "train.batch_size=4", "train.checkpoint_every=1"]
    presence_model = load_config("model", "presence-mario", ["model.channels=[8,8]", "model.dilations=[1,2]"])
    for steps in (2, 3):  # the second run resumes the first
        path = train_model(
            presence_model,
            load_config("train", "presence-mario", [*common, f"train.steps={steps}", "train.heldout_frames=16"]),
            tmp_path / "presence",
            progress=False,
        )
    assert json.loads((tmp_path / "presence" / "player_detector" / "training.json").read_text())["step"] == 3
    assert "median error" in (path / "README.md").read_text()
    assert isinstance(load_presence_reward(path), PresenceReward)

    realism_model = load_config("model", "realism-mario", ["model.channels=[8,8,8,8]", "model.hidden=16"])
    realism_train = load_config(
        "train", "realism-mario", [*common, "train.steps=2", "train.heldout_windows=8", f"train.world_model={checkpoints['base']}"]
    )
    path = train_model(realism_model, realism_train, tmp_path / "realism", progress=False)
    assert "dreamed recognised" in (path / "README.md").read_text()
    assert isinstance(load_realism_reward(path), RealismReward)


def test_the_rolled_out_anchor_denoises_the_real_step_after_the_models_own_frames(real_dataset, checkpoints, monkeypatch):
    """anchor_rollout=N: each update's windows are dreamed r ~ U{0..N} steps (a draw fixed by the
    update) by the model under the recorded actions; the loss is the denoising loss of the real
    frame after them, given the context whose last r frames are the dream's."""
    from worldsim.agents.denoising_anchor import DenoisingAnchor
    from worldsim.agents.real_steps import RealSteps

    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")
    model = env.unwrapped.engine.model
    real_steps, k = RealSteps(model, real_dataset, seed=1), model.context_length
    anchor = DenoisingAnchor(model, real_steps, batch_size=4, rollout=3)
    draws = [anchor.rollout_steps(update) for update in range(40)]
    assert set(draws) == {0, 1, 2, 3}
    assert draws == [DenoisingAnchor(model, real_steps, 4, rollout=3).rollout_steps(update) for update in range(40)]
    assert DenoisingAnchor(model, real_steps, 4).rollout_steps(5) == 0

    update = draws.index(2)
    seen = {}
    monkeypatch.setattr(
        model.denoiser, "loss", lambda target, context, actions, **_: seen.update(target=target, context=context, actions=actions)
    )
    anchor.loss(update, torch.Generator().manual_seed(3))
    real = real_steps.batch(update, 4, stream=0, steps_after=2)
    frames, actions = real["frames"], real["actions"]
    generator = torch.Generator().manual_seed(3)  # the dream's noise comes first from the update's generator
    with torch.no_grad():
        first = model.sampler.sample(model.denoiser, frames[:, :k], actions[:, 1 : k + 1], generator=generator)
        context = torch.cat([frames[:, 1:k], first[:, None]], dim=1)
        second = model.sampler.sample(model.denoiser, context, actions[:, 2 : k + 2], generator=generator)
    assert torch.equal(seen["target"], frames[:, k + 2])
    assert torch.equal(seen["context"][:, : k - 2], frames[:, 2:k])
    assert torch.equal(seen["context"][:, -2], first) and torch.equal(seen["context"][:, -1], second)
    assert not torch.equal(seen["context"][:, -1], frames[:, k + 1])  # dreamed, not the real frame
    assert torch.equal(seen["actions"], actions[:, 3 : k + 3])
    env.close()


@pytest.mark.parametrize("rollout", [0, 2])
def test_the_anchor_pulls_the_adapter_towards_real_steps(real_dataset, checkpoints, rollout):
    """With the reward weighted 0, an anchored aligner is trained by the denoising loss on real
    steps alone: that loss, on the same windows and noise, falls; the curve records it. Rolled out
    (anchor_rollout=2), the loss after 2 dreamed steps falls too (the dreamed contexts are the
    adapted model's, so they move with it), and the curve records each update's dreamed steps."""
    from worldsim.agents.denoising_anchor import DenoisingAnchor
    from worldsim.agents.real_steps import RealSteps

    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")
    model = env.unwrapped.engine.model
    rewards = RewardSet({"brightness": Brightness()}, {"brightness": 0.0})
    aligner = RewardGradientAligner(
        env,
        reward_set=rewards,
        behaviour="random",
        batch_size=4,
        lr=1e-2,
        lora={"rank": 4},
        anchor_weight=1.0,
        anchor_rollout=rollout,
        real_dataset=real_dataset,
    )
    probe = DenoisingAnchor(model, RealSteps(model, real_dataset, seed=1), batch_size=16, rollout=rollout)
    update = next(u for u in range(100) if probe.rollout_steps(u) == rollout)

    def probe_loss():
        with torch.no_grad():
            return float(probe.loss(update, torch.Generator().manual_seed(0)))

    before = probe_loss()
    aligner.learn(env, 12)
    assert all(np.isfinite(row["anchor_loss"]) for row in aligner.curve)
    dreamed = {row["anchor_dreamed_steps"] for row in aligner.curve}
    assert dreamed <= set(range(rollout + 1)) and (len(dreamed) > 1 or rollout == 0)
    assert probe_loss() < 0.9 * before
    env.close()


def test_an_anchor_or_a_critic_refresh_without_real_steps_is_one_error(checkpoints):
    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")
    rewards = RewardSet({"brightness": Brightness()}, {"brightness": 1.0})
    with pytest.raises(WorldsimError, match="need real_dataset"):
        RewardGradientAligner(env, reward_set=rewards, behaviour="random", anchor_weight=1.0)
    with pytest.raises(WorldsimError, match="no dataset 'worldsim/nothing-v0'"):
        RewardGradientAligner(env, reward_set=rewards, behaviour="random", anchor_weight=1.0, real_dataset="worldsim/nothing-v0")
    with pytest.raises(WorldsimError, match="need real_dataset"):
        RewardGradientAligner(env, reward_set=rewards, behaviour="random", critic_steps=1)
    with pytest.raises(WorldsimError, match="anchor_weight is 0: set anchor_weight > 0"):
        RewardGradientAligner(env, reward_set=rewards, behaviour="random", anchor_rollout=2, real_dataset="worldsim/nothing-v0")
    with pytest.raises(WorldsimError, match="anchor_rollout must be an integer >= 0"):
        RewardGradientAligner(
            env, reward_set=rewards, behaviour="random", anchor_weight=1.0, anchor_rollout=-1, real_dataset="worldsim/nothing-v0"
        )
    with pytest.raises(WorldsimError, match=r"\(brightness\) have none: add realism"):
        RewardGradientAligner(env, reward_set=rewards, behaviour="random", critic_steps=1, real_dataset="worldsim/nothing-v0")
    env.close()


def test_the_refreshed_critic_learns_the_adapters_dreams_and_resumes(real_dataset, checkpoints, tmp_path):
    """critic_steps > 0: the realism critic steps on each update's scored frames against real steps;
    it ends up telling those dreams from real steps better than the fixed critic did, it is saved with
    the run as a realism checkpoint, and a resumed run continues from it."""
    from worldsim.agents.real_steps import RealSteps

    from worldsim.rewards.realism import load_realism_reward

    def aligner_on(env):
        rewards = RewardSet({"realism": load_realism_reward(checkpoints["critic"])}, {"realism": 1.0})
        return RewardGradientAligner(
            env,
            reward_set=rewards,
            behaviour="random",
            batch_size=4,
            lr=1e-3,
            lora={"rank": 4},
            critic_steps=4,
            critic_lr=3e-2,
            real_dataset=real_dataset,
        ), rewards.rewards["realism"].critic

    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")
    aligner, critic = aligner_on(env)
    real = RealSteps(env.unwrapped.engine.model, real_dataset, seed=7).batch(0, 16)["frames"]

    def separation(critic):  # mean logit of real steps minus that of the dream's last steps
        with torch.no_grad():
            dream = env.unwrapped.engine.frames
            return float(critic(real[:, -2], real[:, -1]).mean() - critic(dream[:, -2], dream[:, -1]).mean())

    aligner.learn(env, 6, run_dir=tmp_path / "run")
    fixed = load_realism_reward(checkpoints["critic"]).critic
    assert all(np.isfinite(row["critic_loss_dreamed"]) for row in aligner.curve)
    assert not any(p.requires_grad for p in critic.parameters())  # frozen again for the aligner's backward
    saved = load_realism_reward(tmp_path / "run" / "critic").critic
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), critic.state_dict().values(), strict=True))
    assert separation(critic) > separation(fixed) + 1.0
    env.close()

    env = gym.make("worldsim/Mario-v0", checkpoint=checkpoints["base"], device="cpu")
    resumed, resumed_critic = aligner_on(env)
    resumed.learn(env, 6, run_dir=tmp_path / "run")  # nothing left to do: only the restore
    assert resumed.updates == 6
    assert all(torch.equal(a, b) for a, b in zip(resumed_critic.state_dict().values(), critic.state_dict().values(), strict=True))
    env.close()


def test_the_shipped_reward_networks_judge_real_mario_frames(real_dataset):
    """Without paths, the rewards load the shipped networks; on real steps the critic says real and
    the detector puts its peak on Mario's RAM position."""
    from worldsim.data.minari_io import load_dataset
    from worldsim.rewards import load_rewards
    from worldsim.rewards.presence import peak

    rewards = load_rewards("realism+presence+consistency")
    episode = load_dataset(real_dataset)[0]
    frames = from_uint8(torch.from_numpy(np.asarray(episode.observations)))
    with torch.no_grad():
        logits = rewards.rewards["realism"].critic(frames[:-1], frames[1:])
        _, column, row = peak(rewards.rewards["presence"].detector(frames[1:]))
    infos = episode.infos
    true_column, true_row = mario_screen_position(infos["x_pos"][1:], infos["y_pos"][1:], infos["camera_x"][1:])
    error = np.hypot(column.numpy() - true_column, row.numpy() - true_row)
    assert (logits > 0).float().mean() > 0.9
    assert np.median(error) < 2.0


def test_the_real_game_scrolls_its_ground_rigidly_and_a_redrawn_ground_scores_lower(real_dataset):
    """The scroll reward on real emulator steps: 0 (the ground is the last frame's, shifted) for most;
    the same steps with the ground redrawn (faint noise, as the sampler leaves it) score lower."""
    from worldsim.data.minari_io import load_dataset
    from worldsim.rewards import load_rewards

    reward = load_rewards("scroll").rewards["scroll"]
    frames = from_uint8(torch.from_numpy(np.asarray(load_dataset(real_dataset)[0].observations)))
    actions = torch.zeros(len(frames) - 1, 1, dtype=torch.long)

    def score(previous, next_frame):
        return reward.score(Transition(previous[:, None], actions[: len(previous)], actions[: len(previous), 0], next_frame)).values

    real = score(frames[:-1], frames[1:])
    assert real.median() == 0 and (real == 0).float().mean() > 0.5
    shifted = torch.roll(frames[:-1], shifts=-2, dims=-1)  # a scroll of 2 pixels: still rigid
    assert score(frames[:-1], shifted).median() == 0
    redrawn = (frames[1:] + 0.05 * torch.randn_like(frames[1:])).requires_grad_()
    noisy = score(frames[:-1], redrawn)
    assert (noisy[real == 0] < -1.0).all() and noisy.mean() < real.mean()  # rigid steps lose more than a level of 255
    noisy.sum().backward()
    assert redrawn.grad[..., -8:, :].abs().sum() > 0 and redrawn.grad[..., :-8, :].abs().sum() == 0  # only the ground is judged
    with pytest.raises(WorldsimError, match="no network"):
        load_rewards("scroll", {"scroll": "some/folder"})


def test_the_shipped_ground_tiles_fit_the_real_game_and_a_blurred_ground_scores_lower(real_dataset):
    """The ground reward on real emulator frames: 0 for most (the ground is the game's tile); the same
    frames with the ground blurred (as the dream draws it) score lower, through the ground rows only;
    a column group that is no ground (a pit) is capped: it neither counts beyond the cap nor pulls."""
    from worldsim.data.minari_io import load_dataset
    from worldsim.rewards import load_rewards

    reward = load_rewards("ground").rewards["ground"]
    frames = from_uint8(torch.from_numpy(np.asarray(load_dataset(real_dataset)[0].observations)))
    actions = torch.zeros(len(frames), 1, dtype=torch.long)

    def score(next_frame):
        return reward.score(Transition(frames[:, None], actions, actions[:, 0], next_frame)).values

    real = score(frames)
    assert real.median() == 0 and (real == 0).float().mean() > 0.5
    blurred = frames.clone()
    blurred[..., -8:, :] = (blurred[..., -8:, :] + blurred[..., -8:, :].roll(1, dims=-1) + blurred[..., -8:, :].roll(-1, dims=-1)) / 3
    blurred.requires_grad_()
    worse = score(blurred)
    assert (worse[real == 0] < -1.0).all()
    worse.sum().backward()
    assert blurred.grad[..., -8:, :].abs().sum() > 0 and blurred.grad[..., :-8, :].abs().sum() == 0
    pit = frames[real == 0][:1].clone()
    pit[..., -8:, :8] = 1.0  # two groups of white: far beyond the cap from every tile
    pit.requires_grad_()
    distance = reward.distances(pit)
    assert distance.item() == pytest.approx(2 * reward.config.cap / 16, abs=1e-3)  # 2 of 16 groups at the cap, the rest exact
    distance.sum().backward()
    assert pit.grad[..., :8].abs().sum() == 0  # a capped group does not pull
    with pytest.raises(WorldsimError, match="holds"):
        load_rewards("ground", {"ground": str(shipped_checkpoint("presence-mario-v0"))})


def test_ground_tiles_are_estimated_saved_and_loaded(tmp_path, real_dataset):
    """Synthetic frames: one tile at random shifts (and frames whose bottom does not repeat) give that
    tile back; saved and loaded, a frame tiled with it scores 0. The script writes a folder with its card."""
    import sys

    from worldsim.rewards.ground import GroundTilesConfig, estimate_ground_tiles, load_ground_reward, save_ground_tiles

    generator = np.random.default_rng(0)
    tile = generator.integers(0, 256, (8, 4, 3), dtype=np.uint8)
    frames = generator.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    for i in range(20):  # 20 frames of ground at random shifts; 10 without
        frames[i, -8:] = np.tile(np.roll(tile, int(generator.integers(4)), axis=1), (1, 16, 1))
    config = GroundTilesConfig()
    tiles, statistics = estimate_ground_tiles(frames, config)
    assert len(tiles) == 1 and statistics["ground_fraction"] == pytest.approx(20 / 30) and statistics["frames_per_tile"] == [20]
    assert any((np.roll(tiles[0], shift, axis=1) == tile).all() for shift in range(4))
    save_ground_tiles(tmp_path / "tiles", tiles, config, {"dataset": "synthetic"}, "# card\n")
    reward = load_ground_reward(tmp_path / "tiles")
    tiled = from_uint8(torch.from_numpy(frames[:20]))
    assert reward.distances(tiled).abs().max() < 1e-4
    torch.testing.assert_close(reward.nearest_ground(tiled), tiled)  # real ground is its own nearest band
    redrawn = reward.nearest_ground(from_uint8(torch.from_numpy(frames[20:])))
    assert (
        reward.distances(redrawn).abs().max() < 1e-4
        and (redrawn[..., :-8, :] == from_uint8(torch.from_numpy(frames[20:]))[..., :-8, :]).all()
    )
    with pytest.raises(WorldsimError, match="show no tiled ground"):
        estimate_ground_tiles(frames[20:], config)

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    try:
        from estimate_ground_tiles import main as estimate_main
    finally:
        sys.path.pop(0)
    estimate_main(["--dataset", real_dataset, "--out", str(tmp_path / "real"), "--every", "1"])
    assert "python scripts/estimate_ground_tiles.py --dataset" in (tmp_path / "real" / "README.md").read_text()
    assert load_ground_reward(tmp_path / "real").tiles.shape[1:] == (3, 8, 4)
