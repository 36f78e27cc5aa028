"""Hydra configs shipped in the package (``worldsim.configs``): env, agent, model and train groups by name.

``load_config("env", "mario", ["kwargs.level=1-2"])`` composes ``configs/env/mario.yaml`` with
Hydra's compose API and its override syntax, and returns a plain dict. Reading configs is core (it
imports nothing of worldsim but the errors); building an env from one is ``worldsim.envs.make_env``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from worldsim.errors import WorldsimError

CONFIG_DIR = Path(str(files("worldsim.configs")))


def available(group: str) -> list[str]:
    """Config names in a group, e.g. ``available("env") == ["mario", "pointmaze-large", ...]``."""
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def load_config(group: str, name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    if name not in available(group):
        raise WorldsimError(f"unknown {group} {name!r}: choose one of {', '.join(available(group))}")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            config = compose(config_name=f"{group}/{name}", overrides=list(overrides or []))
    except HydraException as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise WorldsimError(f"bad override for {group} {name!r}: {message}") from error
    # A primary config in a group subfolder is packaged under the group's key.
    container = OmegaConf.to_container(config, resolve=True)
    return container.get(group, container) if isinstance(container, dict) else {}
