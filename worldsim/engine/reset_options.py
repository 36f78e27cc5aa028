"""The one reset-options contract of every dream front-end (single, vector and multi-agent envs).

``options={"frames": uint8[k, H, W, C], "actions": int[k]}`` starts a dream from a real context,
``actions[i]`` being the action whose step produced ``frames[i]`` (0 when unknown); a front-end
that holds N dreams takes ``frames uint8[N, k, H, W, C]`` and ``actions int[N, k]``. The game's
progress label (Mario: ``"x_pos"``) may be given too, a number (or N numbers), else it starts at 0.
Nothing else is accepted. In a game of several agents an action is a joint one, one per agent
(``int[k, agents]``, ``int[N, k, agents]``), as the front-ends' ``MultiDiscrete`` space takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldsim.errors import WorldsimError


@dataclass
class ResetContext:
    """Validated contexts, exactly K long: ``frames uint8[N, K, H, W, C]``, ``actions int64[N, K]``,
    ``progress float64[N]``."""

    frames: np.ndarray
    actions: np.ndarray
    progress: np.ndarray


def parse_reset_options(
    options: dict[str, Any],
    *,
    num_dreams: int | None,
    context_length: int,
    frame_shape: tuple[int, ...],
    num_actions: int,
    progress_label: str | None,
    action_counts: tuple[int, ...] = (),
) -> ResetContext:
    """Check ``options`` and make each context K long (``num_dreams=None``: one dream, unbatched).

    A longer history is cut to its last K; a shorter one is padded in front with its first frame
    and action 0, as the model saw episode starts in training. Every problem is one
    ``WorldsimError`` saying what to pass instead. ``action_counts``: each agent's number of
    actions, for a game of several agents (the returned actions are joint indices, C order).
    """
    batched = num_dreams is not None
    lead = f"{num_dreams}, " if batched else ""
    agents = len(action_counts) if len(action_counts) > 1 else 0
    per_frame = f", {agents}" if agents else ""
    shape = ", ".join(map(str, frame_shape))
    allowed = {"frames", "actions"} | ({progress_label} if progress_label else set())
    if set(options) - allowed or "frames" not in options or "actions" not in options:
        extra = f", optionally {progress_label!r}: float" if progress_label else ""
        raise WorldsimError(
            f"reset options {sorted(options)} not understood: pass options={{'frames': uint8[{lead}k, {shape}], 'actions': int[{lead}k{per_frame}]{extra}}}"
        )
    frames, actions = np.asarray(options["frames"]), np.asarray(options["actions"])
    if not batched:
        frames, actions = frames[None], actions[None]
    count = num_dreams if batched else 1
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[0] != count or frames.shape[2:] != frame_shape or frames.shape[1] == 0:
        given = np.asarray(options["frames"])
        raise WorldsimError(f"options['frames'] is {given.dtype}{list(given.shape)}; it must be uint8[{lead}k, {shape}] with k >= 1")
    expected_shape = frames.shape[:2] + ((agents,) if agents else ())
    if not np.issubdtype(actions.dtype, np.integer) or actions.dtype == np.bool_ or actions.shape != expected_shape:
        given = np.asarray(options["actions"])
        one = "one joint action (one per agent)" if agents else "one action"
        raise WorldsimError(f"options['actions'] is {given.dtype}{list(given.shape)}; it must be int[{lead}{frames.shape[1]}{per_frame}], {one} per frame")
    if agents:
        if (actions < 0).any() or (actions >= np.asarray(action_counts)).any():
            raise WorldsimError(f"options['actions'] holds actions outside the agents' spaces: agent i's actions are 0..n_i - 1, n = {list(action_counts)}")
        actions = np.ravel_multi_index(tuple(np.moveaxis(actions.astype(np.int64), -1, 0)), action_counts)
    if actions.min() < 0 or actions.max() >= num_actions:
        raise WorldsimError(f"options['actions'] holds {actions.min()}..{actions.max()}; actions are 0..{num_actions - 1}")
    progress = np.zeros(count, np.float64)
    if progress_label and progress_label in options:
        try:
            progress = np.broadcast_to(np.asarray(options[progress_label], np.float64), (count,)).copy()
        except (TypeError, ValueError):
            raise WorldsimError(f"options[{progress_label!r}] must be a number{' or ' + str(count) + ' numbers' if batched else ''}") from None
    frames, actions = frames[:, -context_length:], actions[:, -context_length:].astype(np.int64)
    missing = context_length - frames.shape[1]
    if missing:
        frames = np.concatenate([np.repeat(frames[:, :1], missing, axis=1), frames], axis=1)
        actions = np.concatenate([np.zeros((count, missing), np.int64), actions], axis=1)
    return ResetContext(frames, actions, progress)
