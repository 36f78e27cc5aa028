"""The DQN agent's preprocessing for SB3 ``VecEnv``s (several dreams, or several emulators, at once).

The same transformation as ``worldsim.agents.dqn.preprocess_env`` applies to one Gymnasium env:
grayscale and resize each frame (``grayscale_resize``), stack the last ``frame_stack`` frames with
the first frame of an episode repeated (as ``DQNAgent.act`` and Gymnasium's
``FrameStackObservation(padding_type="reset")`` do), and divide training rewards by
``REWARD_SCALE`` and clip them to [-1, 1]. SB3's own ``VecFrameStack`` pads with zeros instead,
which the agent would then see only in training, never when it acts.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from worldsim.agents.dqn import REWARD_SCALE, grayscale_resize


class VecAgentPreprocessing(VecEnvWrapper):
    """``uint8[N, H, W, 3]`` observations -> ``uint8[N, frame_stack, frame_size, frame_size]``."""

    def __init__(self, venv: VecEnv, frame_size: int = 84, frame_stack: int = 4):
        space = spaces.Box(0, 255, (frame_stack, frame_size, frame_size), np.uint8)
        super().__init__(venv, observation_space=space)
        self.frame_size, self.frame_stack = frame_size, frame_stack
        self._stacks = np.zeros((venv.num_envs, frame_stack, frame_size, frame_size), np.uint8)

    def _gray(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([grayscale_resize(frame, self.frame_size) for frame in frames])

    def reset(self) -> np.ndarray:
        self._stacks[:] = self._gray(self.venv.reset())[:, None]
        return self._stacks.copy()

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        gray = self._gray(observations)
        for i in np.flatnonzero(dones):
            terminal = np.concatenate([self._stacks[i, 1:], self._gray(infos[i]["terminal_observation"][None])], axis=0)
            infos[i]["terminal_observation"] = terminal
        self._stacks = np.concatenate([self._stacks[:, 1:], gray[:, None]], axis=1)
        self._stacks[dones] = gray[dones][:, None]  # a new episode starts with its first frame repeated
        return self._stacks.copy(), np.clip(rewards / REWARD_SCALE, -1.0, 1.0).astype(np.float32), dones, infos
