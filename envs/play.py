"""``worldsim play``: a person plays the dream with the keyboard, in a pygame window.

Arrows move, X (or up) is the A button (jump), Z is B (run), R restarts, Esc quits. The keys are
turned into NES buttons and the buttons into the env's action through its ``action_set`` (the
buttons of each action), so any action set works: a held combination the set lacks falls back to
the nearest one it has (run is dropped first, then jump: left+jump under SIMPLE_MOVEMENT is left).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from worldsim.errors import WorldsimError

NOOP = "NOOP"
# Buttons dropped one by one, in this order, until the held combination is an action of the set.
FALLBACK_ORDER = ("B", "A", "right", "left")


def keyboard_action(buttons: set[str], action_set: Sequence[Sequence[str]]) -> int:
    """The action of ``action_set`` (``[["NOOP"], ["right"], ["right", "A"], ...]``) for the held
    ``buttons``; right wins over left when both are held."""
    index = {frozenset(action) - {NOOP}: i for i, action in enumerate(action_set)}
    held = set(buttons)
    if {"right", "left"} <= held:
        held.discard("left")
    for drop in (None, *FALLBACK_ORDER):
        held.discard(drop)
        if frozenset(held) in index:
            return index[frozenset(held)]
    return index.get(frozenset(), 0)


def held_buttons(pygame) -> set[str]:
    """The NES buttons held on the keyboard: arrows, X or up for A (jump), Z for B (run)."""
    pressed = pygame.key.get_pressed()
    keys = {
        "right": pressed[pygame.K_RIGHT],
        "left": pressed[pygame.K_LEFT],
        "A": pressed[pygame.K_x] or pressed[pygame.K_UP],
        "B": pressed[pygame.K_z],
    }
    return {button for button, down in keys.items() if down}


def play_dream(
    *,
    checkpoint: str | os.PathLike | None = None,
    device: str | None = None,
    sampling_steps: int | None = None,
    scale: int = 8,
    seed: int = 0,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Play the dream until Esc (or ``max_steps`` loop iterations); a line per finished episode to ``log``."""
    try:
        import pygame
    except ImportError:
        raise WorldsimError("worldsim play needs pygame: pip install 'worldsim[play]'") from None
    from worldsim.envs.dream import make_dream_env

    env = make_dream_env(checkpoint, device, sampling_steps, render_mode="human", render_scale=scale)
    action_set = env.unwrapped.action_set
    log("playing the dream: arrows move, X (or up) jumps, Z runs, R restarts, Esc quits")
    env.reset(seed=seed)
    episode_return, steps, total = 0.0, 0, 0
    while max_steps is None or total < max_steps:
        total += 1
        pygame.event.pump()
        pressed = pygame.key.get_pressed()
        if pressed[pygame.K_ESCAPE] or any(event.type == pygame.QUIT for event in pygame.event.get(pygame.QUIT)):
            break
        if pressed[pygame.K_r]:
            env.reset()
            episode_return, steps = 0.0, 0
            continue
        _, reward, terminated, truncated, info = env.step(keyboard_action(held_buttons(pygame), action_set))
        episode_return, steps = episode_return + reward, steps + 1
        if terminated or truncated:
            cause = "flag" if info.get("flag_get") else "death" if info.get("is_dying") else "time limit"
            log(f"episode over after {steps} steps ({cause}), return {episode_return:.1f}")
            env.reset()
            episode_return, steps = 0.0, 0
    env.close()
