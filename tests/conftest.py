"""Shared test set-up: one torch thread (2-core machines), no display or audio, a private Minari folder."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pytest
import torch

import worldsim  # noqa: F401  (registers the env ids)

torch.set_num_threads(1)


@pytest.fixture
def minari_path(tmp_path, monkeypatch):
    """Each test that writes datasets gets its own MINARI_DATASETS_PATH."""
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path
