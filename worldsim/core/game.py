"""What a world model knows of its game, beyond pixels: saved with the checkpoint as ``"game"``.

The dream engine is generic; everything game-specific it reports comes from here: the meaning of
each action, which info label accumulates the model's progress output (Mario: ``x_pos``), and the
episode-end classes with the info key each one sets (Mario: ``death -> is_dying``,
``flag -> flag_get``). The trainer derives its labels from the same description, so a new game is
a new description (a ``game:`` section in its model config), not new code.
"""

from __future__ import annotations

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
    """

    name: str = "Super Mario Bros World 1-1"
    action_meanings: list[str] = field(default_factory=_mario_actions)
    progress_label: str | None = "x_pos"
    end_classes: list[str] = field(default_factory=lambda: ["running", "death", "flag"])
    end_info_keys: dict[str, str] = field(default_factory=lambda: {"death": "is_dying", "flag": "flag_get"})
    real_env: dict[str, Any] = field(default_factory=lambda: {"id": "worldsim/MarioReal-v0", "kwargs": {}})

    def __post_init__(self):
        if len(self.end_classes) < 1 or set(self.end_info_keys) - set(self.end_classes[1:]):
            raise WorldsimError(
                f"game {self.name!r}: end_info_keys {sorted(self.end_info_keys)} must name end classes after the first of {self.end_classes}"
            )

    @property
    def label_keys(self) -> tuple[str, ...]:
        """The info labels a dataset must record for this game's targets."""
        return tuple(dict.fromkeys([*([self.progress_label] if self.progress_label else []), *self.end_info_keys.values()]))

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
