"""The random stream of a batched env: one stream drives all N members, which share each forward pass."""

from __future__ import annotations

import numpy as np


def vector_np_random(seed: int | list[int] | tuple[int, ...]) -> np.random.Generator:
    """The vector env's ``np_random`` for ``reset(seed=...)``: an int, or a list of seeds folded into one stream."""
    entropy = [int(s) for s in seed] if isinstance(seed, list | tuple) else int(seed)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
