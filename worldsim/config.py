"""Hydra configs shipped in the package (``worldsim.configs``): env and agent groups by name.

``load_config("env", "mario", ["kwargs.level=1-2"])`` composes ``configs/env/mario.yaml`` with
Hydra's compose API and its override syntax, and returns a plain dict.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import gymnasium as gym
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


def make_env(name: str, overrides: list[str] | None = None, **kwargs: Any) -> gym.Env:
    """Build an env from its config name (``mario``, ``pointmaze-umaze``, ...) or a Gymnasium id.

    ``kwargs`` (for example ``render_mode``) are passed to ``gymnasium.make`` on top of the config.
    """
    if name in available("env"):
        config = load_config("env", name, overrides)
        env_kwargs = {**config.get("kwargs", {}), **kwargs}
        if "size" in env_kwargs:
            env_kwargs["size"] = tuple(env_kwargs["size"])
        if config.get("max_episode_steps") is not None:
            env_kwargs["max_episode_steps"] = config["max_episode_steps"]
        env_id = config["id"]
    elif name in gym.registry:
        if overrides:
            raise WorldsimError(f"overrides {overrides} need an env config; {name!r} is a bare Gymnasium id")
        env_id, env_kwargs = name, kwargs
    else:
        raise WorldsimError(f"unknown env {name!r}: choose one of {', '.join(available('env'))}, or a registered Gymnasium id")
    try:
        return gym.make(env_id, **env_kwargs)
    except (TypeError, ValueError) as error:
        if isinstance(error, WorldsimError):
            raise
        raise WorldsimError(f"env {name!r} could not be built with {env_kwargs}: {error}") from error
