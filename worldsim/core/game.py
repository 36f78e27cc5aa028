"""What a world model knows of its game, beyond pixels: saved with the checkpoint as ``"game"``.

The dream engine is generic; everything game-specific it reports comes from here: the meaning of
each action, which info label accumulates the model's progress output (Mario: ``x_pos``), and the
episode-end classes with the info key each one sets (Mario: ``death -> is_dying``,
``flag -> flag_get``). The trainer derives its labels from the same description, so a new game is
a new description (a ``game:`` section in its model config), not new code.

A game of several players (``agents``) acts with a joint action: one action per agent. The engine,
the datasets' windows and the models all see it as one index into the product of the agents'
action spaces (``joint_action``, C order: the last agent's action varies fastest), so the whole
pipeline is the same for one player or many; only the front-ends and the action embedding split it
(``agent_actions``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldsim.errors import WorldsimError


def _mario_actions() -> list[str]:
    # gym-super-mario-bros' SIMPLE_MOVEMENT, buttons space-separated
    return ["NOOP", "right", "right A", "right B", "right A B", "A", "left"]


@dataclass
class GameDescription:
    """A game as the dream engine and the trainer see it.

    Attributes:
        name: for people (model cards, window titles).
        action_meanings: the buttons of each discrete action, space-separated (``"right A"``).
        progress_label: an info label the model predicts the change of (``x_pos``); None: none.
        end_classes: the step's end classes; the first means "running" (no end).
        end_info_keys: for each end class after the first, the info key that is true when it
            happened; a recorded termination is the first class whose key is true, else the first
            end class (``death``).
        real_env: the Gymnasium id and kwargs of the real env whose frames the model learned.
        agents: the players of a multi-agent game (PettingZoo's ``possible_agents``); empty: one.
        agent_action_meanings: for each agent, the meaning of each of its actions. With agents,
            ``action_meanings`` is derived: one entry per joint action, ``"paddle_0:up paddle_1:down"``.
        agent_reward_keys: for each agent, the info key holding its own reward of the step (the
            recorded step reward is the joint view's, the agents' sum); empty: no per-agent rewards.
    """

    name: str = "Super Mario Bros World 1-1"
    action_meanings: list[str] = field(default_factory=_mario_actions)
    progress_label: str | None = "x_pos"
    end_classes: list[str] = field(default_factory=lambda: ["running", "death", "flag"])
    end_info_keys: dict[str, str] = field(default_factory=lambda: {"death": "is_dying", "flag": "flag_get"})
    real_env: dict[str, Any] = field(default_factory=lambda: {"id": "worldsim/MarioReal-v0", "kwargs": {}})
    agents: list[str] = field(default_factory=list)
    agent_action_meanings: list[list[str]] = field(default_factory=list)
    agent_reward_keys: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.agent_reward_keys and len(self.agent_reward_keys) != len(self.agents):
            raise WorldsimError(f"game {self.name!r}: agent_reward_keys {self.agent_reward_keys} must name one info key per agent of {self.agents}")
        if len(self.agents) != len(self.agent_action_meanings) or any(len(meanings) < 1 for meanings in self.agent_action_meanings):
            raise WorldsimError(
                f"game {self.name!r}: agent_action_meanings must list the actions of each of the agents {self.agents}, "
                f"got {len(self.agent_action_meanings)} lists"
            )
        if self.agents:
            self.action_meanings = [
                " ".join(f"{agent}:{meaning}" for agent, meaning in zip(self.agents, joint, strict=True))
                for joint in itertools.product(*self.agent_action_meanings)
            ]
        if len(self.end_classes) < 1 or set(self.end_info_keys) - set(self.end_classes[1:]):
            raise WorldsimError(
                f"game {self.name!r}: end_info_keys {sorted(self.end_info_keys)} must name end classes after the first of {self.end_classes}"
            )

    @property
    def action_counts(self) -> tuple[int, ...]:
        """Actions per agent (one entry for a single-player game): the ``nvec`` of the joint space."""
        return tuple(len(meanings) for meanings in self.agent_action_meanings) or (len(self.action_meanings),)

    def joint_action(self, agent_actions: np.ndarray) -> np.ndarray:
        """``int[..., agents]`` per-agent actions -> ``int64[...]`` joint action indices."""
        agent_actions = np.asarray(agent_actions, np.int64)
        return np.ravel_multi_index(tuple(np.moveaxis(agent_actions, -1, 0)), self.action_counts).astype(np.int64)

    def agent_actions(self, joint: np.ndarray) -> np.ndarray:
        """``int[...]`` joint action indices -> ``int64[..., agents]`` per-agent actions."""
        return np.stack(np.unravel_index(np.asarray(joint, np.int64), self.action_counts), axis=-1).astype(np.int64)

    @property
    def label_keys(self) -> tuple[str, ...]:
        """The info labels a dataset must record for this game's targets."""
        progress = [self.progress_label] if self.progress_label else []
        return tuple(dict.fromkeys([*progress, *self.end_info_keys.values(), *self.agent_reward_keys]))

    def end_class_of(self, terminated: np.ndarray, labels: dict[str, np.ndarray]) -> np.ndarray:
        """``int64[...]`` end class of recorded steps from their terminations and info labels."""
        classes = np.zeros(np.shape(terminated), np.int64)
        unmatched = np.asarray(terminated, bool).copy()
        for index, name in enumerate(self.end_classes[1:], start=1):
            key = self.end_info_keys.get(name)
            if key is not None and key in labels:
                hit = unmatched & np.asarray(labels[key], bool)
                classes[hit] = index
                unmatched &= ~hit
        classes[unmatched] = 1
        return classes

    def info_flags(self, end_class: np.ndarray) -> dict[str, np.ndarray]:
        """The info keys a dream reports for predicted end classes ``int64[N]``: ``{key: bool[N]}``."""
        return {key: np.asarray(end_class) == self.end_classes.index(name) for name, key in self.end_info_keys.items()}
