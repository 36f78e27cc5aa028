"""What the alignment-horizon benchmarks share: long scripted dreams and real step pairs.

``alignment_horizon.py`` scores long dreams with a critic; ``long_dream_critic.py`` trains a critic
on long dreams. Both play the same dreams (``scripted_dreams``) and read real steps the same way
(``real_pairs``). A judge blind to the sampler's faint grain degrades its frames itself (its
config's ``blur`` and ``levels``).
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent
from worldsim.agents.dream_driver import SingleDreamView, dream_engine

import worldsim  # noqa: F401
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.engine.dream_engine import DreamStep


@torch.no_grad()
def scripted_dreams(
    adapter: str | None, dreams: int, steps: int, epsilon: float, seed: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, DreamStep]]:
    """``steps`` steps of ``dreams`` dreams of ``worldsim/Mario-v0`` (with ``adapter`` merged, if
    any) from its start states, the scripted runner with ``epsilon`` random actions playing each,
    never reset (a predicted death or flag is dreamed past). Yields per step the frame each dream
    continued from (``uint8[N, H, W, C]`` and ``float[N, C, H, W]``) and the engine's step. The same
    seed gives the same starts and sampling noise with and without an adapter."""
    env = gym.make_vec("worldsim/Mario-v0", num_envs=dreams, adapter=adapter)
    engine = dream_engine(env)
    env.reset(seed=seed)
    agents = [make_agent("scripted", SingleDreamView(env), epsilon=epsilon) for _ in range(dreams)]
    for index, agent in enumerate(agents):
        agent.reset(seed + index)
    observations, info = engine.observations(), engine.reset_info()
    try:
        for _ in range(steps):
            actions = np.array(
                [agent.act(observations[i], {key: value[i] for key, value in info.items()}) for i, agent in enumerate(agents)]
            )
            previous_observations, previous_frames = observations, engine.frames[:, -1]
            dreamed = engine.step(actions)
            yield previous_observations, previous_frames, dreamed
            observations, info = dreamed.observations, dreamed.info
    finally:
        env.close()


def real_pairs(dataset_id: str, count: int, seed: int) -> torch.Tensor:
    """``count`` random real steps of ``dataset_id`` as ``uint8[N, 2, H, W, C]`` (previous frame, next frame)."""
    windows = SequenceDataset(load_dataset(dataset_id), 2)
    chosen = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)), replace=False)
    return torch.stack([windows[int(i)]["frames"] for i in chosen])
