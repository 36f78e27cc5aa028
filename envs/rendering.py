"""Rendering shared by the real and the dream envs, so both look the same on screen and in videos."""

from __future__ import annotations

import numpy as np

from worldsim.errors import WorldsimError


def check_render_mode(render_mode: str | None, supported) -> None:
    """Every env's constructor check: one clear error naming the modes it does support."""
    if render_mode is not None and render_mode not in supported:
        raise WorldsimError(f"render_mode {render_mode!r} is not supported: use None or one of {', '.join(supported)}")


def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of ``uint8[H, W, C]`` to ``uint8[H*scale, W*scale, C]``."""
    if scale == 1:
        return frame.copy()
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


class HumanRenderer:
    """A pygame window that shows RGB frames at a fixed frame rate (render_mode="human")."""

    def __init__(self, title: str, fps: int):
        try:
            import pygame
        except ImportError as error:  # pygame is the optional `play` extra
            raise ImportError("render_mode='human' needs pygame: pip install 'worldsim[play]'") from error
        self._pygame = pygame
        self._title = title
        self._fps = fps
        self._screen = None
        self._clock = None

    def show(self, frame: np.ndarray) -> None:
        pygame = self._pygame
        if self._screen is None:
            pygame.display.init()  # display only: no audio device is needed (or present on servers)
            pygame.display.set_caption(self._title)
            self._screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            self._clock = pygame.time.Clock()
        pygame.event.pump()
        # pygame surfaces are (width, height, channels)
        self._screen.blit(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), (0, 0))
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        if self._screen is not None:
            self._pygame.display.quit()
            self._screen = None


class FrameRenderer:
    """An env's ``render()`` for frame observations: the frame upscaled for ``"rgb_array"``, shown in
    a pygame window for ``"human"``. The real and the dream Mario envs share it."""

    def __init__(self, render_mode: str | None, scale: int, title: str, fps: int):
        self.render_mode, self.scale, self._title, self._fps = render_mode, scale, title, fps
        self._human: HumanRenderer | None = None

    def render(self, frame: np.ndarray) -> np.ndarray | None:
        if self.render_mode is None:
            import gymnasium as gym

            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        upscaled = upscale(frame, self.scale)
        if self.render_mode == "rgb_array":
            return upscaled
        if self._human is None:
            self._human = HumanRenderer(self._title, fps=self._fps)
        self._human.show(upscaled)
        return None

    def close(self) -> None:
        if self._human is not None:
            self._human.close()
            self._human = None
