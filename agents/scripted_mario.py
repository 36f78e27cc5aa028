"""A scripted Super Mario Bros runner: a cheap source of data that reaches deep into a level.

It runs right and jumps on three simple cues read from the 64x64 observation (and from ``info``
when the env provides ``x_pos``), so it runs unchanged in the real emulator and in the dream:

* a gap: sky colour where the ground should be, just ahead of Mario;
* something in the way: brown/orange/red pixels (enemies, stair blocks) just above the ground ahead;
* being stuck: ``x_pos`` (or, without info, the scrolling ground) has not moved for a few steps (a pipe).

Exploration: with probability ``epsilon`` it takes a random action instead. With
``balance_actions=True`` the exploratory action is the one it has used least so far, so a
dataset it collects covers rare actions (NOOP, left, jump in place) that a runner never takes.
With ``hold_steps=N`` an exploratory action is held for 1..N steps (drawn uniformly): one step of
LEFT barely moves Mario, a held one makes him stop, turn and run back, which a world model must
also learn to draw.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.errors import WorldsimError

SKY_RGB = np.array([104, 136, 252])


def _find_action(action_set: list[list[str]], buttons: set[str]) -> int | None:
    for index, combo in enumerate(action_set):
        if set(combo) == buttons:
            return index
    return None


class ScriptedMarioAgent:
    """Runs right, jumps gaps and obstacles; epsilon exploration, optionally action-balanced.

    Args:
        env: a Mario env (real or dream) whose ``unwrapped.action_set`` lists button combinations
            and contains at least ``right+B`` and ``right+A+B``; observations ``uint8[H, W, 3]``.
        epsilon: probability of an exploratory action at each step.
        balance_actions: pick exploratory actions least-used-first instead of uniformly.
        jump_steps: how long a jump button is held (longer = higher and farther).
        stuck_steps: steps without progress before it jumps.
        hold_steps: an exploratory action is held for a uniform 1..hold_steps steps.
        seed: seeds exploration (``reset(seed)`` reseeds it; without either, OS entropy).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        epsilon: float = 0.05,
        balance_actions: bool = False,
        jump_steps: int = 8,
        stuck_steps: int = 2,
        sprint: bool = True,
        hold_steps: int = 1,
        seed: int | None = None,
    ):
        action_set = getattr(env.unwrapped, "action_set", None)
        if action_set is None:
            raise WorldsimError(
                f"the scripted Mario agent needs a Mario env with an action_set, got {type(env.unwrapped).__name__}: "
                "use --env mario"
            )
        self.run = _find_action(action_set, {"right", "B"} if sprint else {"right"})
        self.jump = _find_action(action_set, {"right", "A", "B"} if sprint else {"right", "A"})
        if self.run is None or self.jump is None:
            raise WorldsimError(
                "the scripted Mario agent needs the actions right+B and right+A+B: use action_set 'simple' or 'complex'"
            )
        if not 0.0 <= epsilon <= 1.0:
            raise WorldsimError(f"epsilon must be in [0, 1], got {epsilon}")
        if hold_steps < 1:
            raise WorldsimError(f"hold_steps must be >= 1, got {hold_steps}")
        self.num_actions = int(env.action_space.n)
        self.hold_steps = int(hold_steps)
        self.epsilon = float(epsilon)
        self.balance_actions = bool(balance_actions)
        self.jump_steps = int(jump_steps)
        self.stuck_steps = int(stuck_steps)
        self.action_counts = np.zeros(self.num_actions, np.int64)
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode; a seed reseeds exploration, ``None`` keeps its stream (the protocol's meaning)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._jump_left = 0  # steps the jump button may still be held
        self._previous: int | None = None  # the last scripted action (A must be released to jump again)
        self._last_progress: Any = None
        self._still_steps = 0
        self._last_height: int | None = None
        self._held: tuple[int, int] | None = None  # (exploratory action, steps it is still held)

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> int:
        action = self._scripted_action(observation, info)
        if self._held is not None:
            action, left = self._held
            self._held = (action, left - 1) if left > 1 else None
        elif self._rng.random() < self.epsilon:
            action = self._exploratory_action()
            hold = int(self._rng.integers(1, self.hold_steps + 1))
            self._held = (action, hold - 1) if hold > 1 else None
        self.action_counts[action] += 1
        return int(action)

    def _exploratory_action(self) -> int:
        if self.balance_actions:
            least = np.flatnonzero(self.action_counts == self.action_counts.min())
            return int(self._rng.choice(least))
        return int(self._rng.integers(self.num_actions))

    def _scripted_action(self, observation: np.ndarray, info: dict[str, Any] | None) -> int:
        stuck = self._update_stuck(observation, info)
        cue = stuck or self._gap_ahead(observation) or self._obstacle_ahead(observation)
        rising = self._update_height(info)  # None without y_pos: then each jump is held a fixed time
        if self._previous == self.jump and self._jump_left > 0 and rising is not False:
            self._jump_left -= 1  # holding A while rising makes the jump higher
            action = self.jump
        elif cue and self._previous != self.jump:
            # A jump only starts on a fresh press of A from the ground. Pressing on every other step
            # while a cue lasts catches the landing, even when Mario is still in the air now.
            self._jump_left = self.jump_steps - 1
            action = self.jump
        else:
            action = self.run
        self._previous = action
        return action

    def _update_stuck(self, observation: np.ndarray, info: dict[str, Any] | None) -> bool:
        # x_pos when the env reports it; otherwise the ground rows, which only change when the screen
        # scrolls (enemies and Mario's own animation change the rest of the picture while he is stuck).
        progress = int(info["x_pos"]) if info and "x_pos" in info else observation[int(0.88 * observation.shape[0]) :].tobytes()
        self._still_steps = self._still_steps + 1 if progress == self._last_progress else 0
        self._last_progress = progress
        return self._still_steps >= self.stuck_steps

    def _update_height(self, info: dict[str, Any] | None) -> bool | None:
        """Whether Mario went up over the last step; None when the env gives no y_pos."""
        if not info or "y_pos" not in info:
            return None
        height, previous = int(info["y_pos"]), self._last_height
        self._last_height = height
        return previous is not None and height > previous

    @staticmethod
    def _window(observation: np.ndarray, rows: tuple[float, float], columns: tuple[float, float]) -> np.ndarray:
        # Mario stands at most ~44% across the screen once it scrolls; look ahead of that.
        height, width = observation.shape[:2]
        return observation[int(rows[0] * height) : int(rows[1] * height), int(columns[0] * width) : int(columns[1] * width)]

    def _gap_ahead(self, observation: np.ndarray) -> bool:
        ground = self._window(observation, (0.88, 0.94), (0.52, 0.62)).astype(np.int64)
        return bool((np.abs(ground - SKY_RGB).sum(-1) < 40).any())

    def _obstacle_ahead(self, observation: np.ndarray) -> bool:
        above_ground = self._window(observation, (0.75, 0.86), (0.52, 0.66)).astype(np.int64)
        red, green, blue = above_ground[..., 0], above_ground[..., 1], above_ground[..., 2]
        brownish = (red > green + 20) & (red > blue + 40)
        return int(brownish.sum()) >= 2
