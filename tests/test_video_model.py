"""The video diffusion model: space-time U-Net with each temporal layer, clip sampler, training,
`worldsim generate`, and the held-out denoising report, on real Mario frames with tiny configs."""

import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.cli import main
from worldsim.config import load_config
from worldsim.core.frames import quantize
from worldsim.core.serialization import from_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.diffusion.clip_sampler import ClipSampler, ClipSamplerConfig
from worldsim.diffusion.edm import skip_and_out_scales
from worldsim.eval.video_quality import denoising_report, heldout_clips
from worldsim.models.video_model import VideoModel, VideoModelConfig, load_video_model
from worldsim.models.video_unet import TEMPORAL_KINDS, VideoUNet, VideoUNetConfig
from worldsim.video import count_video_frames

TINY = ["model.unet.block_channels=[8,16]", "model.unet.norm_groups=4", "model.clip_frames=6", "model.overlap=3", "model.edm.max_context=3"]
TINY_TRAIN = ["train.batch_size=2", "train.optimizer.warmup_steps=0", "train.checkpoint_every=2", "train.ema_decay=0.9"]


def tiny_model(kind: str = "bi-s6") -> VideoModel:
    values = load_config("model", f"video-{kind}", TINY)
    values.pop("kind")
    return VideoModel(from_dict(VideoModelConfig, values))


@pytest.fixture(scope="module")
def dataset_id(tmp_path_factory):
    """200 real steps of the scripted runner as a Minari dataset."""
    with collected(tmp_path_factory, "worldsim/mario-video-v0", "--env", "mario", "--agent", "scripted", "--steps", "200") as dataset_id:
        yield dataset_id


@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
def test_every_temporal_layer_starts_as_the_identity_so_an_untrained_unet_outputs_zero(kind):
    config = VideoUNetConfig(image_size=16, block_channels=(8, 16), norm_groups=4, temporal=kind)
    network = VideoUNet(config)
    out = network(torch.randn(2, 3, 5, 16, 16), torch.zeros(2, 5))
    assert out.shape == (2, 3, 5, 16, 16)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("kind, sees_the_future", [("none", False), ("s6", False), ("attn", True), ("bi-s6", True)])
def test_only_bidirectional_layers_let_a_frame_see_later_frames(kind, sees_the_future):
    """Spatial blocks see one frame, so a U-Net with causal S6 is causal as a whole; with no temporal
    layer no frame sees any other."""
    torch.manual_seed(0)
    network = VideoUNet(VideoUNetConfig(image_size=16, block_channels=(8, 16), norm_groups=4, temporal=kind))
    for module in network.modules():  # the zero-initialised outputs would hide every path
        if hasattr(module, "out_proj") or module is network.conv_out:
            torch.nn.init.normal_((module.out_proj if hasattr(module, "out_proj") else module).weight, std=0.1)
    x = torch.randn(1, 3, 5, 16, 16, requires_grad=True)
    network(x, torch.zeros(1, 5))[:, :, 1].sum().backward()
    influence = x.grad.abs().sum(dim=(0, 1, 3, 4))  # per input frame
    assert influence[1] > 0
    assert (influence[2:].sum() > 0) == sees_the_future
    assert (influence[0] > 0) == (kind != "none")


def test_the_sampler_keeps_its_context_and_lands_on_an_exact_denoisers_clip():
    """With a denoiser that knows the answer, Euler-Heun steps end exactly on it; context frames are
    handed to the denoiser at the context level and never returned."""
    target = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    context = torch.rand(2, 3, 2, 8, 8) * 2 - 1
    seen = []

    class Exact:
        def denoise(self, noisy, sigma):
            seen.append(sigma.clone())
            assert torch.allclose(noisy[:, :, :2], context, atol=0.2)  # clean but for the context noise
            return torch.cat([context, target], dim=2)

    sampler = ClipSampler(ClipSamplerConfig(num_steps=5))
    out = sampler.sample(Exact(), (2, 3, 4, 8, 8), context, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, quantize(target))
    assert len(seen) == 2 * 5 - 1  # Heun: two calls per step but the last
    assert all((levels[:, :2] == sampler.config.context_sigma).all() for levels in seen)


def test_a_long_clip_is_continued_in_overlapping_chunks_from_its_real_start():
    torch.manual_seed(0)
    model = tiny_model("s6").eval()
    first = quantize(torch.rand(1, 3, 3, 32, 32) * 2 - 1)
    clip = model.generate(20, first=first, generator=torch.Generator().manual_seed(1))
    assert clip.shape == (1, 3, 20, 32, 32)
    torch.testing.assert_close(clip[:, :, :3], first)
    same = model.generate(20, first=first, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(clip, same)  # same seed, same clip


def test_the_denoising_report_scores_an_untrained_network_by_the_formula(dataset_id):
    model = tiny_model("attn").eval()
    frames = heldout_clips(SequenceDataset(load_dataset(dataset_id), 6), 4)
    report = denoising_report(model, frames, sigmas=(0.5, 2.0), seed=3)
    again = denoising_report(model, frames, sigmas=(0.5, 2.0), seed=3)
    assert report.loss == again.loss and report.clips == 4
    # The network outputs 0, so D = c_skip * noisy and the weighted error is (x - c_skip * noisy)^2 / c_out^2.
    clips = model.clips(frames)
    noise = torch.randn(clips.shape, generator=torch.Generator().manual_seed(3))
    for sigma, loss, psnr in zip(report.sigmas, report.loss, report.psnr, strict=True):
        c_skip, c_out = skip_and_out_scales(torch.tensor(sigma), 0.5)
        estimate = c_skip * (clips + sigma * noise)
        assert loss == pytest.approx(float((((clips - estimate) / c_out) ** 2).mean()), rel=1e-4)
        assert psnr == pytest.approx(10 * np.log10(4 / float(((estimate - clips) ** 2).mean())), abs=1e-3)
    continuation = denoising_report(model, frames, sigmas=(0.5,), context=3, seed=3)
    assert continuation.context == 3 and continuation.loss[0] != report.loss[0]


def test_train_resume_and_generate_from_the_command_line(dataset_id, tmp_path):
    out = tmp_path / "video"
    train = ["train", "--model", "video-bi-s6", "--train", "video", "--out", str(out), "--quiet", *TINY, *TINY_TRAIN, f"train.datasets=[{dataset_id}]"]
    assert main([*train, "train.steps=2"]) == 0
    first_weights = load_video_model(out / "model")[0].state_dict()
    assert main([*train, "train.steps=4"]) == 0  # resumes at step 2
    model, _ = load_video_model(out / "model")
    assert "4 steps of batch 2" in (card := (out / "model" / "README.md").read_text()) and "CPU-minutes" in card
    assert any(not torch.equal(first_weights[k], v) for k, v in model.state_dict().items())
    assert model.config.unet.temporal == "bi-s6"

    video = tmp_path / "clip.gif"
    generate = ["generate", "--checkpoint", str(out / "model"), "--frames", "12", "--video", str(video), "--quiet", "--scale", "2"]
    assert main([*generate, "--start-dataset", dataset_id]) == 0
    assert count_video_frames(video) == 12


def test_a_cpu_time_budget_stops_training_and_a_resume_keeps_it(dataset_id, tmp_path):
    out = tmp_path / "timed"
    train = ["train", "--model", "video-none", "--train", "video", "--out", str(out), "--quiet", *TINY, *TINY_TRAIN, f"train.datasets=[{dataset_id}]"]
    assert main([*train, "train.steps=1000", "train.max_cpu_minutes=0.0001"]) == 0
    assert "1 steps of batch 2" in (out / "model" / "README.md").read_text()
    assert main([*train, "train.steps=1000", "train.max_cpu_minutes=0.0001"]) == 0  # already out of time: nothing more
    assert "1 steps of batch 2" in (out / "model" / "README.md").read_text()


def test_bad_generate_input_is_one_line(dataset_id, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "missing"), "--video", str(tmp_path / "a.mp4")]) == 2
    assert main(["generate", "--checkpoint", str(tmp_path), "--video", str(tmp_path / "a.avi")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("worldsim: error: ") for line in errors)
    assert ".mp4 or .gif" in errors[1]
