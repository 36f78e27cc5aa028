"""The pieces under the thin CLI: its command table, checkpoint kinds, training dispatch, keyboard play."""

import itertools

import pytest
from gym_super_mario_bros.actions import RIGHT_ONLY, SIMPLE_MOVEMENT
from worldsim.envs.play import keyboard_action

from worldsim.cli import COMMANDS, build_parser
from worldsim.core.checkpoint import read_config, shipped_checkpoint
from worldsim.core.checkpoint_kinds import (
    DIFFUSION_FORCING_PLANNER,
    WORLD_MODEL,
    checkpoint_kind,
    config_kind,
    model_config_kind,
    require_kind,
)
from worldsim.errors import WorldsimError
from worldsim.train.tasks import train_model


def test_every_command_of_the_table_is_in_the_parser():
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    assert list(subparsers.choices) == [command.name for command in COMMANDS]


def test_shipped_checkpoints_are_told_apart_by_their_kind(tmp_path):
    assert checkpoint_kind(shipped_checkpoint("mario-v0")) == WORLD_MODEL
    assert checkpoint_kind(shipped_checkpoint("df-umaze-v0")) == DIFFUSION_FORCING_PLANNER
    planner = shipped_checkpoint("df-umaze-v0")
    with pytest.raises(WorldsimError, match="holds a diffusion-forcing maze planner, not a world model"):
        require_kind(read_config(planner), WORLD_MODEL, planner)
    with pytest.raises(WorldsimError, match="no known checkpoint kind"):
        config_kind({"format": "worldsim-checkpoint"})
    with pytest.raises(WorldsimError, match="no checkpoint at"):
        checkpoint_kind(tmp_path / "missing")


def test_model_configs_name_their_kind_and_training_refuses_an_unknown_one(tmp_path):
    assert model_config_kind({"unet": {}}) == WORLD_MODEL
    assert model_config_kind({"kind": DIFFUSION_FORCING_PLANNER}) == DIFFUSION_FORCING_PLANNER
    with pytest.raises(WorldsimError, match="model config kind 'gan' is unknown"):
        train_model({"kind": "gan"}, {}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_keyboard_maps_to_the_simple_movement_actions_by_their_buttons():
    expected = {  # (right, left, jump, run) -> SIMPLE_MOVEMENT index, as `worldsim play` always mapped them
        (1, 0, 1, 1): 4, (1, 0, 1, 0): 2, (1, 0, 0, 1): 3, (1, 0, 0, 0): 1, (0, 1, 0, 0): 6, (0, 0, 1, 0): 5, (0, 0, 0, 0): 0,
    }  # fmt: skip
    for keys in itertools.product([0, 1], repeat=4):
        right, left, jump, run = keys
        buttons = {b for b, down in zip(["right", "left", "A", "B"], keys, strict=True) if down}
        action = keyboard_action(buttons, SIMPLE_MOVEMENT)
        if keys in expected:
            assert action == expected[keys], buttons
        held = set(SIMPLE_MOVEMENT[action]) - {"NOOP"}
        assert held <= buttons | ({"right"} if right else set())  # never a button that is not held
    assert RIGHT_ONLY[keyboard_action({"left", "A"}, RIGHT_ONLY)] == ["NOOP"]  # no left in the set: nothing
