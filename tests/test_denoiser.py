"""The world model's diffusion core on real Mario frames: preconditioning, learning, sampling."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from diffusers import EDMEulerScheduler

from worldsim.core.frames import from_uint8, quantize, to_uint8
from worldsim.diffusion.edm import EDMTraining, blur, skip_and_out_scales
from worldsim.diffusion.sampler import NextFrameSampler, SamplerConfig
from worldsim.models.context import FrameStackContext
from worldsim.models.denoiser import FrameDenoiser
from worldsim.models.frame_unet import FrameUNet, FrameUNetConfig

K = 4


def tiny_denoiser(space_to_depth=2, seed=0, mixture_candidates=0, refine_channels=0, prediction="next_frame"):
    torch.manual_seed(seed)
    config = FrameUNetConfig(
        block_channels=(32, 32),
        layers_per_block=1,
        norm_groups=8,
        space_to_depth=space_to_depth,
        mixture_candidates=mixture_candidates,
        refine_channels=refine_channels,
    )
    return FrameDenoiser(FrameStackContext(7, K, 3, config.embedding_dim), FrameUNet(config), EDMTraining(prediction=prediction))


@pytest.fixture(scope="module")
def transitions():
    """Real (context frames, actions taken at them, next frame) triples from World 1-1."""
    env = gym.make("worldsim/MarioReal-v0")
    rng = np.random.default_rng(0)
    frames, actions = [env.reset(seed=0)[0]], []
    while len(frames) < 40:
        action = int(rng.choice([1, 2, 3, 4]))
        observation, _, terminated, truncated, _ = env.step(action)
        frames.append(observation)
        actions.append(action)
        if terminated or truncated:
            break
    env.close()
    frames = from_uint8(torch.from_numpy(np.stack(frames)))
    actions = torch.tensor(actions)
    starts = range(len(actions) - K + 1)
    context = torch.stack([frames[s : s + K] for s in starts])
    taken = torch.stack([actions[s : s + K] for s in starts])  # actions[s + K - 1] produced frames[s + K]
    target = torch.stack([frames[s + K] for s in starts])
    return context, taken, target


def test_uint8_round_trip_and_quantisation():
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    floats = from_uint8(frames)
    assert floats.shape == (2, 3, 64, 64) and floats.min() >= -1 and floats.max() <= 1
    assert torch.equal(to_uint8(floats), frames)
    assert torch.equal(quantize(floats + 0.002), floats)


def test_scales_agree_with_diffusers_preconditioning():
    sigma = torch.tensor([0.002, 0.1, 1.0, 5.0, 20.0]).reshape(-1, 1, 1, 1)
    c_skip, c_out = skip_and_out_scales(sigma, 0.5)
    scheduler = EDMEulerScheduler(sigma_data=0.5)
    x, f = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    torch.testing.assert_close(scheduler.precondition_outputs(x, f, sigma), c_skip * x + c_out * f)


def test_blur_spreads_a_point_keeps_flat_frames_and_leaves_zero_alone(transitions):
    context = transitions[0][:2]  # [2, K, C, H, W] real frames
    assert torch.equal(blur(context, torch.zeros(2)), context)
    point = torch.zeros(2, 1, 1, 9, 9)
    point[:, :, :, 4, 4] = 1.0
    spread = blur(point, torch.tensor([0.0, 1.0]))
    assert torch.equal(spread[0], point[0])
    torch.testing.assert_close(spread[1].sum(), torch.tensor(1.0))  # mass kept away from the edges
    assert 0.15 < float(spread[1, 0, 0, 4, 4]) < 0.17  # 1 / (2 pi) for a unit Gaussian
    flat = torch.full((1, 2, 3, 8, 8), 0.25)  # replicated edges: no dark border
    torch.testing.assert_close(blur(flat, torch.tensor([2.0])), flat)


def test_context_blur_acts_only_when_asked(transitions):
    context, actions, target = (t[:4] for t in transitions)
    denoiser = tiny_denoiser()

    def loss(**training):
        denoiser.training_config = EDMTraining(**training)
        with torch.no_grad():
            return float(denoiser.loss(target, context, actions, generator=torch.Generator().manual_seed(0)))

    assert loss() == loss(context_blur_max=0.0)  # no blur draws no extra random numbers
    assert loss(context_blur_max=2.0) != loss()


@pytest.mark.parametrize("space_to_depth", [1, 2])
def test_untrained_denoiser_is_edm_skip_connection(transitions, space_to_depth):
    context, actions, target = transitions
    denoiser = tiny_denoiser(space_to_depth)
    sigma = torch.tensor([0.01, 0.5, 3.0])
    noisy = target[:3] + sigma.reshape(-1, 1, 1, 1) * torch.randn_like(target[:3])
    c_skip, _ = skip_and_out_scales(sigma.reshape(-1, 1, 1, 1), 0.5)
    with torch.no_grad():
        torch.testing.assert_close(denoiser.denoise(noisy, sigma, context[:3], actions[:3]), c_skip * noisy)


def test_context_embedding_depends_on_actions_and_context_noise(transitions):
    context, actions, _ = transitions
    module = tiny_denoiser().context
    _, base = module(context[:1], actions[:1], torch.zeros(1))
    _, other_action = module(context[:1], (actions[:1] + 1) % 7, torch.zeros(1))
    _, noisier = module(context[:1], actions[:1], torch.full((1,), 0.3))
    assert not torch.allclose(base, other_action) and not torch.allclose(base, noisier)


def test_denoiser_learns_real_transitions(transitions):
    context, actions, target = (t[:8] for t in transitions)
    denoiser = tiny_denoiser()
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=2e-3)

    def held_out_loss():
        with torch.no_grad():
            return float(np.mean([denoiser.loss(target, context, actions, generator=torch.Generator().manual_seed(s)) for s in range(4)]))

    before = held_out_loss()
    generator = torch.Generator().manual_seed(1)
    for _ in range(60):
        optimizer.zero_grad()
        denoiser.loss(target, context, actions, generator=generator).backward()
        optimizer.step()
    assert held_out_loss() < 0.5 * before


@pytest.mark.parametrize("prediction", ["next_frame", "change"])
def test_mixture_weights_on_a_context_frame_return_it_exactly(transitions, prediction):
    context, actions, target = (t[:3] for t in transitions)
    denoiser = tiny_denoiser(mixture_candidates=K + 1, refine_channels=8, prediction=prediction)
    fold = denoiser.network.config.space_to_depth**2
    sigma = torch.tensor([0.01, 0.5, 3.0])
    noisy = target + sigma.reshape(-1, 1, 1, 1) * torch.randn_like(target)
    with torch.no_grad():
        # Untrained, the logits are all 0: the mean of EDM's skip estimate and the 4 context frames.
        c_skip, _ = skip_and_out_scales(sigma.reshape(-1, 1, 1, 1), 0.5)
        mean = (c_skip * noisy + sum(denoiser.target(context[:, k], context) for k in range(K))) / (K + 1)
        torch.testing.assert_close(denoiser.denoise(noisy, sigma, context, actions), mean)
        for k in range(K):  # candidate 0 is EDM's estimate, candidate k + 1 context frame k
            bias = denoiser.network.unet.conv_out.bias
            bias.zero_()
            bias[(3 + 1 + k) * fold : (3 + 2 + k) * fold] = 40.0  # a one-hot softmax after pixel_shuffle
            frame = denoiser.to_frame(denoiser.denoise(noisy, sigma, context, actions), context)
            torch.testing.assert_close(frame, context[:, k], atol=1e-5, rtol=0)


def test_mixture_denoiser_learns_to_copy_the_frame_an_action_points_at(transitions):
    """A task that needs copying: the next frame is the context frame the last action names. At
    equal steps the mixture denoiser copies it; the plain U-Net, at 16x16 as the room model runs, must redraw it."""
    context, actions, _ = transitions
    target = context[torch.arange(len(context)), actions[:, -1] - 1]  # actions are 1..4: frames 0..3
    train, held_out = slice(0, 16), slice(16, None)

    def error_after_training(mixture_candidates):
        denoiser = tiny_denoiser(space_to_depth=4, mixture_candidates=mixture_candidates)
        optimizer = torch.optim.AdamW(denoiser.parameters(), lr=2e-3)
        generator = torch.Generator().manual_seed(1)
        for _ in range(40):
            optimizer.zero_grad()
            denoiser.loss(target[train], context[train], actions[train], generator=generator).backward()
            optimizer.step()
        noisy = target[held_out] + 0.5 * torch.randn(target[held_out].shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            estimate = denoiser.denoise(noisy, torch.full((len(noisy),), 0.5), context[held_out], actions[held_out])
        return float((estimate - target[held_out]).pow(2).mean())

    assert error_after_training(K + 1) < 0.5 * error_after_training(0)  # measured: 0.023 vs 0.077


def test_sampler_is_seeded_quantised_and_takes_num_steps(transitions):
    context, actions, _ = transitions
    denoiser = tiny_denoiser()
    calls = []
    original = denoiser.denoise
    denoiser.denoise = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    sampler = NextFrameSampler(SamplerConfig(num_steps=3))
    first = sampler.sample(denoiser, context[:2], actions[:2], generator=torch.Generator().manual_seed(7))
    second = sampler.sample(denoiser, context[:2], actions[:2], generator=torch.Generator().manual_seed(7))
    assert len(calls) == 6  # 3 steps, twice
    assert first.shape == (2, 3, 64, 64) and torch.equal(first, second)
    levels = (first + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    other = sampler.sample(denoiser, context[:2], actions[:2], generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first, other)


def test_sampler_rejects_zero_steps():
    with pytest.raises(ValueError, match="num_steps"):
        NextFrameSampler(SamplerConfig(num_steps=0))
