"""The one dataclass <-> JSON converter: nested configs round-trip, typos are refused, and the
shipped checkpoints' configs read and write back unchanged."""

import json
from pathlib import Path

import pytest

from worldsim.core.checkpoint import read_config, shipped_checkpoint
from worldsim.core.serialization import from_dict, to_dict
from worldsim.errors import WorldsimError
from worldsim.models.trajectory_model import TrajectoryModelConfig
from worldsim.models.world_model import WorldModelConfig
from worldsim.train.world_model_training import WorldModelTraining


def test_nested_configs_round_trip_through_json():
    config = WorldModelConfig.from_dict({"sampler": {"sigmas": [5, 0.25]}, "unet": {"block_channels": [16, 32]}})
    assert config.unet.block_channels == (16, 32) and config.sampler.sigmas == [5.0, 0.25]
    again = WorldModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    training = from_dict(WorldModelTraining, {"denoiser": {"steps": 7, "optimizer": {"betas": [0.8, 0.9]}}})
    assert training.denoiser.steps == 7 and training.denoiser.optimizer.betas == (0.8, 0.9)
    assert from_dict(WorldModelTraining, json.loads(json.dumps(to_dict(training)))) == training


def test_an_unknown_key_is_one_error_naming_it():
    with pytest.raises(WorldsimError, match=r"train.denoiser has unknown keys \['stpes'\]"):
        from_dict(WorldModelTraining, {"denoiser": {"stpes": 7}}, where="train")
    with pytest.raises(WorldsimError, match="unknown keys"):
        WorldModelConfig.from_dict({"unet": {"channels": [1]}})


@pytest.mark.parametrize("name", ["mario-v0", "coop-pong-v3", "df-umaze-v0", "df-medium-v0", "df-large-v0"])
def test_shipped_configs_read_and_write_back_unchanged(name):
    config = read_config(shipped_checkpoint(name))
    if "planner" in config:
        assert TrajectoryModelConfig.from_dict(config["planner"]).to_dict() == config["planner"]
    else:
        assert WorldModelConfig.from_dict(config["model"]).to_dict() == config["model"]


def test_the_first_shipped_models_layout_reads_into_todays():
    """The first mario-v0 (feed-forward heads, no game section; shipped until 2026-11-22): its
    config.json, kept in tests/data, still loads: same values, one "game" section."""
    config = json.loads((Path(__file__).parent / "data" / "first_mario_model_config.json").read_text())
    model = WorldModelConfig.from_dict(config["model"])
    assert model.heads is not None and model.end_model is None
    assert model.game.action_meanings == config["model"]["action_meanings"]
    saved_unet = config["model"]["unet"]  # fields added since take their defaults (no refinement)
    assert {key: value for key, value in to_dict(model.unet).items() if key in saved_unet} == saved_unet
    assert model.unet.refine_channels == 0
