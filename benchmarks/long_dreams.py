"""What the alignment-horizon benchmarks share: long scripted dreams, real step pairs and real contexts.

``alignment_horizon.py`` scores long dreams with a critic; ``long_dream_critic.py`` trains a critic
on long dreams; ``long_dream_cues.py`` asks what such a critic reads. They play the same dreams
(``scripted_dreams``) and read real steps (``real_pairs``) and real contexts (``real_contexts``) the
same way. A judge blind to the sampler's faint grain degrades its frames itself (its config's
``blur`` and ``levels``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch
from worldsim.agents import make_agent
from worldsim.agents.dream_driver import SingleDreamView, dream_engine

import worldsim  # noqa: F401
from worldsim.core.frames import from_uint8, to_uint8
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset
from worldsim.engine.dream_engine import DreamStep


@torch.no_grad()
def scripted_dreams(
    adapter: str | None,
    dreams: int,
    steps: int,
    epsilon: float,
    seed: int,
    edit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    adapter_scale: float = 1.0,
    adapter_sigma_max: float | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, DreamStep]]:
    """``steps`` steps of ``dreams`` dreams of ``worldsim/Mario-v0`` (with ``adapter`` merged at
    ``adapter_scale``, at levels ``<= adapter_sigma_max`` if given) from its start states, the scripted runner with ``epsilon`` random
    actions playing each, never reset (a predicted death or flag is dreamed past). Yields per step the frame each dream
    continued from (``uint8[N, H, W, C]`` and ``float[N, C, H, W]``) and the engine's step. The same
    seed gives the same starts and sampling noise with and without an adapter. With ``edit``
    (previous frames, dreamed frames -> frames, all ``float[N, C, H, W]``), every dreamed frame is
    replaced by its edit, which the dreams go on from and the step yields."""
    env = gym.make_vec(
        "worldsim/Mario-v0", num_envs=dreams, adapter=adapter, adapter_scale=adapter_scale, adapter_sigma_max=adapter_sigma_max
    )
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
            if edit is not None:
                edited = edit(previous_frames, dreamed.frames)
                engine.frames = torch.cat([engine.frames[:, :-1], edited[:, None]], dim=1)
                dreamed = dataclasses.replace(dreamed, frames=edited, observations=to_uint8(edited).cpu().numpy())
            yield previous_observations, previous_frames, dreamed
            observations, info = dreamed.observations, dreamed.info
    finally:
        env.close()


def real_pairs(dataset_id: str, count: int, seed: int) -> torch.Tensor:
    """``count`` random real steps of ``dataset_id`` as ``uint8[N, 2, H, W, C]`` (previous frame, next frame)."""
    windows = SequenceDataset(load_dataset(dataset_id), 2)
    chosen = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)), replace=False)
    return torch.stack([windows[int(i)]["frames"] for i in chosen])


def real_contexts(dataset_id: str, context_frames: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random real windows of ``context_frames + 1`` steps of ``dataset_id``: ``frames float[N, K + 1, C, H, W]``
    in ``[-1, 1]`` and ``actions int64[N, K + 1]``, a world model's contexts and their real next frames."""
    windows = SequenceDataset(load_dataset(dataset_id), context_frames + 1)
    chosen = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)), replace=False)
    items = [windows[int(i)] for i in chosen]
    return from_uint8(torch.stack([item["frames"] for item in items])), torch.stack([item["actions"] for item in items])
