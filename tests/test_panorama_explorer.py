"""GenEx's explorer on diffusers' SVD U-Net: the two training stages on real panoramic walks."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch
from _datasets import collected

from worldsim.config import load_config
from worldsim.core.checkpoint import load_checkpoint
from worldsim.errors import WorldsimError
from worldsim.models.panorama_explorer import ExplorerConfig, ExplorerNoise, PanoramaExplorer, temporal_parameters
from worldsim.train.explorer_training import train_explorer

torch.set_num_threads(1)
if importlib.util.find_spec("miniworld") is None:
    pytest.skip("MiniWorld is installed apart: pip install --no-deps miniworld==2.1.0", allow_module_level=True)

TINY = ["model.block_channels=[32,32]", "model.attention_heads=[2,2]", "model.encoder_channels=[8,8]", "model.frames=2"]


def tiny_train(dataset_id, stage, base=None, steps=2):
    overrides = [
        f"train.datasets=[{dataset_id}]",
        f"train.stage={stage}",
        f"train.steps={steps}",
        "train.batch_size=2",
        "train.checkpoint_every=1",
    ]
    if base is not None:
        overrides.append(f"train.base={base}")
    return load_config("model", "explorer", TINY), load_config("train", f"explorer-{stage}", overrides)


@pytest.fixture(scope="module")
def walks(tmp_path_factory):
    with collected(
        tmp_path_factory, "worldsim/panorama-tiny-v0", "--env", "miniworld-panorama", "--agent", "room-explorer", "--steps", "200"
    ) as dataset_id:
        yield dataset_id


def test_the_panorama_is_an_equirectangular_scene_seen_through_its_four_faces():
    """The ring-to-cylinder maths against an independent library: a smooth equirectangular scene cut
    into cube faces by py360convert, the four side faces (front, left, back, right: yaw +90 each)
    remapped by ``ring_to_cylinder_maps``, is that scene sampled at each column's azimuth and each
    row's elevation, back in equirectangular coordinates."""
    import cv2
    import py360convert
    from worldsim.envs.real.miniworld_panorama import ELEVATION_TAN, ring_to_cylinder_maps

    rows, columns = 256, 512
    longitude = (np.arange(columns) + 0.5) / columns * 2 * np.pi - np.pi  # py360convert's: left to right, clockwise
    latitude = np.pi / 2 - (np.arange(rows) + 0.5) / rows * np.pi
    lon, lat = np.meshgrid(longitude, latitude)
    scene = np.stack([0.5 + 0.5 * np.sin(lon), 0.5 + 0.5 * np.cos(2 * lon) * np.cos(lat), 0.5 + 0.5 * np.sin(3 * lat)], axis=-1)
    faces = py360convert.e2c(scene.astype(np.float32), face_w=64, cube_format="dict")
    ring = np.concatenate([faces[name] for name in "FLBR"], axis=1)
    panorama = cv2.remap(ring, *ring_to_cylinder_maps(64, 64, 128), interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    azimuth = np.radians(180.0 - (np.arange(128) + 0.5) * 360.0 / 128)  # counter-clockwise from the heading
    elevation = np.arctan(ELEVATION_TAN * (1.0 - 2.0 * (np.arange(64) + 0.5) / 64))
    x = ((-azimuth + np.pi) % (2 * np.pi)) / (2 * np.pi) * columns - 0.5
    y = (np.pi / 2 - elevation) / np.pi * rows - 0.5
    expected = cv2.remap(
        scene.astype(np.float32),
        *np.meshgrid(x.astype(np.float32), y.astype(np.float32)),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_WRAP,
    )
    assert np.abs(panorama - expected).mean() < 0.005 and np.abs(panorama - expected).max() < 0.02  # 8-bit steps are 0.004
    mirrored = cv2.remap(ring[:, ::-1].copy(), *ring_to_cylinder_maps(64, 64, 128), interpolation=cv2.INTER_LINEAR)
    assert np.abs(mirrored - expected).mean() > 0.05  # a wrong handedness would show


@pytest.mark.parametrize("refine_channels", [0, 8])
def test_denoiser_starts_as_the_identity_and_the_spherical_loss_sees_the_seam(refine_channels):
    torch.manual_seed(0)
    model = PanoramaExplorer(
        ExplorerConfig(block_channels=(32, 32), attention_heads=(2, 2), encoder_channels=(8, 8), frames=2, refine_channels=refine_channels)
    )
    clips, panorama = torch.rand(2, 2, 3, 64, 128) * 2 - 1, torch.rand(2, 3, 64, 128) * 2 - 1
    sigma = torch.full((2,), 0.5)
    noisy = clips + sigma.reshape(-1, 1, 1, 1, 1) * torch.randn_like(clips)
    # zero output convolution: D(x) = c_skip x, EDM's skip connection alone
    expected = noisy * 0.5**2 / (0.5**2 + 0.5**2)
    torch.testing.assert_close(model.denoise(noisy, sigma, panorama, torch.full((2,), 0.05)), expected)
    # with weights, a U-Net's zero padding makes the turned clip's prediction differ at the seam
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.05)
    plain = model.loss(clips, panorama, generator=torch.Generator().manual_seed(0))
    model.config.noise = ExplorerNoise(spherical_weight=0.5)
    assert model.loss(clips, panorama, generator=torch.Generator().manual_seed(0)).item() != plain.item()


def test_the_refinement_wraps_round_in_azimuth_and_trains_in_the_spatial_stage():
    from worldsim.models.panorama_explorer import PanoramaConv2d

    torch.manual_seed(0)
    conv = PanoramaConv2d(3, 4)
    panorama = torch.randn(1, 3, 8, 16)
    # turning the panorama turns the convolution's output exactly: the seam is a place like any other
    torch.testing.assert_close(conv(torch.roll(panorama, 5, dims=-1)), torch.roll(conv(panorama), 5, dims=-1))
    assert conv(panorama).shape == (1, 4, 8, 16)
    model = PanoramaExplorer(
        ExplorerConfig(block_channels=(32, 32), attention_heads=(2, 2), encoder_channels=(8, 8), frames=2, refine_channels=8)
    )
    temporal = {name for name, _ in temporal_parameters(model)}
    assert not any(name.startswith("refine") for name in temporal)  # GenEx's second stage leaves it as the first trained it
    clips, panorama = torch.rand(2, 2, 3, 64, 128) * 2 - 1, torch.rand(2, 3, 64, 128) * 2 - 1
    model.loss(clips, panorama, generator=torch.Generator().manual_seed(0)).backward()
    assert model.refine[-1].weight.grad.abs().sum() > 0


def test_two_stages_the_second_trains_only_the_temporal_blocks(walks, tmp_path):
    spatial = train_explorer(*tiny_train(walks, "spatial"), tmp_path / "spatial", progress=False)
    temporal = train_explorer(*tiny_train(walks, "temporal", base=spatial), tmp_path / "temporal", progress=False)
    before, after = load_checkpoint(spatial), load_checkpoint(temporal)
    assert before.config["stage"] == "spatial" and after.config["stage"] == "temporal"
    model = PanoramaExplorer(ExplorerConfig(block_channels=(32, 32), attention_heads=(2, 2), encoder_channels=(8, 8), frames=2))
    temporal_names = {name for name, _ in temporal_parameters(model)}
    changed = {name for name, value in after.weights.items() if not torch.equal(value, before.weights[name])}
    assert changed and changed <= temporal_names  # the image layers are the first stage's, bit for bit
    with pytest.raises(WorldsimError, match="train.base"):
        train_explorer(*tiny_train(walks, "temporal"), tmp_path / "no-base", progress=False)
    with pytest.raises(WorldsimError, match="train.stage"):
        train_explorer(
            *tiny_train(walks, "spatial")[:1], {**tiny_train(walks, "spatial")[1], "stage": "both"}, tmp_path / "bad", progress=False
        )


def test_the_spatial_stage_continues_a_finished_explorer(walks, tmp_path):
    """train.base in the spatial stage: training longer starts from that model's weights, temporal
    blocks included, and trains only the image layers."""
    spatial = train_explorer(*tiny_train(walks, "spatial"), tmp_path / "spatial", progress=False)
    temporal = train_explorer(*tiny_train(walks, "temporal", base=spatial), tmp_path / "temporal", progress=False)
    longer = train_explorer(*tiny_train(walks, "spatial", base=temporal), tmp_path / "longer", progress=False)
    base, after = load_checkpoint(temporal).weights, load_checkpoint(longer).weights
    model = PanoramaExplorer(ExplorerConfig(block_channels=(32, 32), attention_heads=(2, 2), encoder_channels=(8, 8), frames=2))
    temporal_names = {name for name, _ in temporal_parameters(model)}
    assert all(torch.equal(after[name], base[name]) for name in temporal_names)  # the base's temporal blocks, kept
    changed = {name for name in after if not torch.equal(after[name], base[name])}
    assert changed and not changed & temporal_names
    assert all(after[name].sub(base[name]).abs().max() < 0.01 for name in changed)  # a step from the base, not from scratch


def test_explorer_env_turns_exactly_imagines_forward_and_repeats_with_its_seed(walks, tmp_path):
    from gymnasium.utils.env_checker import check_env

    spatial = train_explorer(*tiny_train(walks, "spatial"), tmp_path / "spatial", progress=False)
    env = gym.make("worldsim/Explorer-v0", checkpoint=str(spatial), sampling_steps=2)
    check_env(env.unwrapped)
    first, info = env.reset(seed=0)
    assert first.shape == (64, 128, 3) and info == {"walk_step": 0}
    left, *_ = env.step(0)
    assert np.array_equal(left, np.roll(first, 8, axis=1))  # a turn is a roll, exactly
    assert np.array_equal(env.step(1)[0], first)
    walk = [env.step(2)[0] for _ in range(3)]
    assert env.unwrapped.engine.walk_step[0] == 1  # a 2-frame walk used up, a new one begun from its last panorama
    env.reset(seed=0)
    env.step(0)
    env.step(1)
    assert all(np.array_equal(a, env.step(2)[0]) for a in walk)  # same seed, same imagined walk
    given = np.zeros((64, 128, 3), np.uint8)
    assert np.array_equal(env.reset(options={"panorama": given})[0], given)
    with pytest.raises(WorldsimError, match="panorama"):
        env.reset(options={"panorama": np.zeros((64, 64, 3), np.uint8)})
    with pytest.raises(WorldsimError, match="no checkpoint"):
        gym.make("worldsim/Explorer-v0", checkpoint=str(tmp_path / "missing"))


def test_the_shipped_explorer_is_the_default_and_walks_towards_what_is_ahead():
    """``gym.make("worldsim/Explorer-v0")`` with no arguments: the shipped explorer, through
    Gymnasium's checker. A real walk of 4 steps forward in the four rooms, imagined from its first
    panorama: the explorer's 4th panorama is nearer the real one than the start panorama is (the
    held-out figure, 16 walks: 21.1 against 19.7 dB at 4 sampling steps)."""
    from gymnasium.utils.env_checker import check_env

    from worldsim.core.frames import from_uint8
    from worldsim.eval.fidelity import frame_psnr

    env = gym.make("worldsim/Explorer-v0", sampling_steps=4)
    check_env(env.unwrapped)
    real = gym.make("worldsim/MiniWorldPanorama-v0")
    psnr = lambda a, b: frame_psnr(from_uint8(torch.from_numpy(a[None])), from_uint8(torch.from_numpy(b[None]))).item()
    imagined_psnr, held_psnr = [], []
    for seed in (100_001, 100_005):  # held-out rooms whose reset heading has 4 free steps ahead
        start, info = real.reset(seed=seed)
        walked = [real.step(2) for _ in range(4)]
        assert np.hypot(walked[-1][4]["agent_x"] - info["agent_x"], walked[-1][4]["agent_z"] - info["agent_z"]) > 1.9
        env.reset(seed=0, options={"panorama": start})
        imagined = [env.step(2)[0] for _ in range(4)][-1]
        imagined_psnr.append(psnr(imagined, walked[-1][0]))
        held_psnr.append(psnr(start, walked[-1][0]))
    assert np.mean(imagined_psnr) > np.mean(held_psnr), (imagined_psnr, held_psnr)
    real.close()


def test_vector_explorer_is_the_single_env_batched(walks, tmp_path):
    spatial = train_explorer(*tiny_train(walks, "spatial"), tmp_path / "spatial", progress=False)
    vector = gym.make_vec(
        "worldsim/Explorer-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        checkpoint=str(spatial),
        sampling_steps=2,
        max_episode_steps=4,
    )
    starts = np.stack([np.full((64, 128, 3), value, np.uint8) for value in (0, 100, 200)])
    observations, info = vector.reset(seed=0, options={"panorama": starts})
    assert observations.shape == (3, 64, 128, 3) and np.array_equal(observations, starts) and info["walk_step"].tolist() == [0, 0, 0]
    observations, rewards, terminated, truncated, info = vector.step(np.array([0, 2, 1]))
    assert (rewards == 0).all()
    assert np.array_equal(observations[0], np.roll(starts[0], 8, axis=1)) and np.array_equal(
        observations[2], np.roll(starts[2], -8, axis=1)
    )
    assert info["walk_step"].tolist() == [0, 1, 0] and not terminated.any() and not truncated.any()
    for _ in range(3):
        *_, truncated, info = vector.step(np.array([2, 2, 2]))
    assert truncated.all()  # max_episode_steps
    observations, _, terminated, truncated, info = vector.step(np.array([2, 2, 2]))
    assert not truncated.any() and info["walk_step"].tolist() == [0, 0, 0]  # next-step autoreset: fresh starts
    with pytest.raises(WorldsimError, match="do not fit"):
        vector.step(np.array([0, 3, 0]))
    vector.close()


def test_seeker_faces_the_red_it_sees_and_imagines_four_ways_when_it_sees_none(walks, tmp_path):
    from worldsim.agents import make_agent
    from worldsim.agents.panorama_seeker import red_bearing

    panorama = np.full((64, 128, 3), 120, np.uint8)
    panorama[30:34, 20:24] = (200, 10, 10)  # red left of the heading (column 64 is straight ahead)
    bearing = red_bearing(panorama)
    assert bearing is not None and 90 < bearing < 135  # columns 20-24: about 115 degrees to the left
    env = gym.make("worldsim/MiniWorldPanorama-v0")
    blind = make_agent("panorama-seeker", env, seed=0)
    assert blind.act(panorama) == 0  # turn left, toward it
    panorama[:] = 120
    panorama[30:34, 62:66] = (200, 10, 10)
    assert blind.act(panorama) == 2  # ahead: walk
    # just over half a turn off (12.7 degrees): a turn would leave it as far off the other way, and the
    # real rooms' resampling made the seeker turn back and forth for a whole episode; it walks on
    panorama[:] = 120
    panorama[30:34, 57:62] = (200, 10, 10)
    assert 11.25 < red_bearing(panorama) < 13.5 and blind.act(panorama) == 2
    panorama[:] = 120
    panorama[30:34, 54:59] = (200, 10, 10)  # 21 degrees left: a turn brings it nearer ahead
    assert blind.act(panorama) == 0
    spatial = train_explorer(*tiny_train(walks, "spatial"), tmp_path / "spatial", progress=False)
    imagining = make_agent("panorama-seeker", env, explorer=str(spatial), sampling_steps=2, seed=0)
    env.reset(seed=1)
    imagining.act(np.full((64, 128, 3), 120, np.uint8))  # no red: four walks imagined, a direction chosen
    assert imagining.imagined == 1 and imagining.plan
    # where no imagined walk shows red, the open way: the one whose imagined walk changes the view most
    changes = {0: 5, 1: 9, 2: 40, 3: 2}  # the quarter turns 0, 1 (left), 2 (about: never chosen), 3 (right)

    def imagine(indices, rng, starts):
        imagining.engine.walks_started = starts

    imagining.engine.reset = imagine
    imagining.engine.step = lambda actions: np.stack(
        [np.clip(start.astype(int) + changes[q], 0, 255).astype(np.uint8) for q, start in enumerate(imagining.engine.walks_started)]
    )
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) == 1
    changes[3] = 20
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) == -1
    imagining.open_ways, changes[1] = "random", 12  # left (12) and right (20) change the view at least half the most: either
    assert {imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) for _ in range(32)} == {1, -1}
    imagining.open_ways = "off"
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) is None
    plain_step = imagining.engine.step

    def red_behind(actions):  # the walk about (quarter 2) shows red
        frames = plain_step(actions)
        frames[2, 30:34, 60:64] = (200, 10, 10)
        return frames

    imagining.engine.step, imagining.open_ways = red_behind, "widest"
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) == 2  # red followed
    imagining.follow_red = "never"
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) == -1  # red ignored: the widest way
    imagining.follow_red = "unseen"
    assert imagining._imagined_best_quarter(np.full((64, 128, 3), 120, np.uint8)) == 2  # none in view: followed
    in_view = np.full((64, 128, 3), 120, np.uint8)
    in_view[30:34, 62:66] = (200, 10, 10)  # red ahead already (a detour): the imagined red tells nothing new
    assert imagining._imagined_best_quarter(in_view) == -1
    with pytest.raises(WorldsimError, match="open_ways must be one of 'widest', 'random', 'off', got 'sometimes'"):
        make_agent("panorama-seeker", env, open_ways="sometimes")
    env.close()


def test_diffusers_imports_after_a_miniworld_env_has_rendered():
    # Mesa's llvmpipe (headless EGL without a GPU) and triton's LLVM crashed the process when triton
    # came second: the imagining seeker, built after its env, died importing diffusers. A fresh
    # interpreter, as a user's script would be: here diffusers is long imported.
    import subprocess
    import sys

    script = (
        "import gymnasium as gym, worldsim\n"
        "env = gym.make('worldsim/MiniWorldPanorama-v0'); env.reset(seed=0)\n"
        "import diffusers\n"
        "print('imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]


def test_the_shipped_explorer_saved_before_the_refinement_existed_is_still_a_temporal_base(walks, tmp_path):
    # its config.json has no refine_channels: the default (0) is what it was trained with
    from pathlib import Path

    import worldsim

    shipped = Path(worldsim.__file__).parent / "checkpoints" / "explorer-v0"
    overrides = [f"train.datasets=[{walks}]", "train.steps=1", "train.batch_size=1", "train.checkpoint_every=1", f"train.base={shipped}"]
    out = train_explorer(
        load_config("model", "explorer"), load_config("train", "explorer-temporal", overrides), tmp_path / "t", progress=False
    )
    assert (out / "model.safetensors").is_file()
    with pytest.raises(WorldsimError, match="another config"):
        train_explorer(
            load_config("model", "explorer", ["model.refine_channels=8"]),
            load_config("train", "explorer-temporal", overrides),
            tmp_path / "r",
            progress=False,
        )


def test_a_run_saved_before_the_refinement_existed_resumes(walks, tmp_path):
    import json

    train_explorer(*tiny_train(walks, "spatial", steps=1), tmp_path / "run", progress=False)
    saved = tmp_path / "run" / "explorer-spatial" / "config.json"
    config = json.loads(saved.read_text())
    del config["explorer"]["refine_channels"]  # as the run folders of explorer-v0 were written
    saved.write_text(json.dumps(config))
    train_explorer(*tiny_train(walks, "spatial", steps=2), tmp_path / "run", progress=False)
    assert json.loads(saved.read_text())["explorer"]["refine_channels"] == 0
    _, train = tiny_train(walks, "spatial", steps=3)
    with pytest.raises(WorldsimError, match="another config"):
        train_explorer(load_config("model", "explorer", [*TINY, "model.refine_channels=8"]), train, tmp_path / "run", progress=False)
