"""worldsim's environments and their Gymnasium registration.

``import worldsim`` registers:

* ``worldsim/Mario-v0``: Super Mario Bros World 1-1 dreamed by the world model shipped in the
  package (``checkpoint=PATH`` loads another); ``gym.make_vec`` batches N dreams in one pass;
* ``worldsim/MarioReal-v0``: Super Mario Bros through the NES emulator, with the dream's
  preprocessing (64x64 RGB uint8, Discrete(7), frame skip 4 with max-pool of the last two frames);
* ``worldsim/PointMaze-UMaze-v0``, ``-Medium-v0``, ``-Large-v0``: Gymnasium-Robotics PointMaze (v3)
  with D4RL maze2d episode limits; ``goal_cell="d4rl"`` gives the single-task goal;
* ``worldsim/CoopPong-v0``: PettingZoo's Cooperative Pong (two paddles, one ball) as one env with the
  joint action ``MultiDiscrete([3, 3])``, 64x64 RGB uint8 (``envs.real.coop_pong`` also has the
  PettingZoo ``ParallelEnv``); the game itself truncates at ``max_cycles`` (900) steps;
* ``worldsim/CoopPong-dream-v0``: Cooperative Pong dreamed by the shipped model, the same joint view;
* ``worldsim/MiniWorldRoom-v0``: MiniWorld's room of six coloured boxes in first person (64x64 RGB
  uint8, Discrete(4): turn left/right 15 degrees, move forward/back), the game that tests a dream's
  memory (``envs.real.miniworld_room``; MiniWorld installed with ``pip install --no-deps miniworld==2.1.0``);
* ``worldsim/MiniWorldPanorama-v0``: MiniWorld's four rooms (find the red box) seen as a 360-degree
  cylindrical panorama at the agent's position (64x128 RGB uint8, Discrete(3): turn left/right 22.5
  degrees, a whole number of columns, and move forward), GenEx's observation (``envs.real.miniworld_panorama``);
* ``worldsim/Explorer-v0``: that panorama world imagined by the explorer shipped in the package
  (``checkpoint=PATH`` loads another): turns are exact rolls, moves forward are generated (``envs.explorer``).

``parallel_env("worldsim/CoopPong-v0")`` and ``parallel_env("worldsim/CoopPong-dream-v0")`` build
the PettingZoo ``ParallelEnv`` of the real and the dreamed game (each paddle an agent).

``make_env("mario")`` builds an env from its Hydra config (``configs/env/mario.yaml``) or a bare
Gymnasium id; Hydra is imported only when it is called, so ``import worldsim`` stays light.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

# A stuck agent (walking into a pipe) would otherwise run until the in-game clock ends the episode,
# about 2400 steps; a good run clears World 1-1 in about 400.
MARIO_MAX_EPISODE_STEPS = 1000

COOP_PONG_MAX_CYCLES = 900  # PettingZoo's default for Cooperative Pong; the dream truncates where the game does

ROOM_MAX_EPISODE_STEPS = 250  # MiniWorld's PutNext and FourRooms truncate there themselves

POINTMAZE_IDS = {
    "umaze": "worldsim/PointMaze-UMaze-v0",
    "medium": "worldsim/PointMaze-Medium-v0",
    "large": "worldsim/PointMaze-Large-v0",
}
# D4RL maze2d episode lengths (the normalized score is defined over these horizons).
POINTMAZE_MAX_EPISODE_STEPS = {"umaze": 300, "medium": 600, "large": 800}


def _register(env_id: str, **kwargs) -> None:
    if env_id not in registry:  # re-importing must not warn about re-registration
        register(id=env_id, **kwargs)


def register_envs() -> None:
    _register(
        "worldsim/Mario-v0",
        entry_point="worldsim.envs.dream:WorldModelEnv",
        vector_entry_point="worldsim.envs.dream_vector:WorldModelVectorEnv",
        max_episode_steps=MARIO_MAX_EPISODE_STEPS,
    )
    _register(
        "worldsim/MarioReal-v0",
        entry_point="worldsim.envs.real.mario:MarioEnv",
        max_episode_steps=MARIO_MAX_EPISODE_STEPS,
    )
    for maze, env_id in POINTMAZE_IDS.items():
        _register(
            env_id,
            entry_point="worldsim.envs.real.pointmaze:PointMazeEnv",
            max_episode_steps=POINTMAZE_MAX_EPISODE_STEPS[maze],
            kwargs={"maze": maze},
        )
    # No max_episode_steps: the game truncates itself at its max_cycles argument.
    _register("worldsim/CoopPong-v0", entry_point="worldsim.envs.real.coop_pong:CoopPongEnv")
    # The dreamed game's joint view: the generic dream env over the shipped Cooperative Pong model.
    _register(
        "worldsim/CoopPong-dream-v0",
        entry_point="worldsim.envs.dream:WorldModelEnv",
        vector_entry_point="worldsim.envs.dream_vector:WorldModelVectorEnv",
        max_episode_steps=COOP_PONG_MAX_CYCLES,
        kwargs={"shipped": "coop-pong-v3"},
    )

    _register(
        "worldsim/MiniWorldRoom-v0",
        entry_point="worldsim.envs.real.miniworld_room:MiniWorldRoomEnv",
        max_episode_steps=ROOM_MAX_EPISODE_STEPS,
    )
    _register(
        "worldsim/MiniWorldPanorama-v0",
        entry_point="worldsim.envs.real.miniworld_panorama:MiniWorldPanoramaEnv",
        max_episode_steps=ROOM_MAX_EPISODE_STEPS,  # FourRooms truncates at 250 too
    )
    _register(
        "worldsim/Explorer-v0",
        entry_point="worldsim.envs.explorer:ExplorerEnv",
        vector_entry_point="worldsim.envs.explorer:ExplorerVectorEnv",
        max_episode_steps=ROOM_MAX_EPISODE_STEPS,
    )


# PettingZoo has no registry: worldsim's ParallelEnvs by id, built by ``parallel_env(id, **kwargs)``.
PARALLEL_ENVS: dict[str, str] = {
    "worldsim/CoopPong-v0": "worldsim.envs.real.coop_pong:parallel_env",
    "worldsim/CoopPong-dream-v0": "worldsim.envs.dream_parallel:coop_pong_dream",
}


def parallel_env(env_id: str, **kwargs: Any):
    """The PettingZoo ``ParallelEnv`` registered as ``env_id`` (``PARALLEL_ENVS``), built with ``kwargs``."""
    import importlib

    from worldsim.errors import WorldsimError

    if env_id not in PARALLEL_ENVS:
        raise WorldsimError(f"unknown multi-agent env {env_id!r}: choose one of {', '.join(PARALLEL_ENVS)}")
    module_name, function_name = PARALLEL_ENVS[env_id].split(":")
    return getattr(importlib.import_module(module_name), function_name)(**kwargs)


register_envs()


def make_env(name: str, overrides: list[str] | None = None, **kwargs: Any) -> gym.Env:
    """Build an env from its config name (``mario``, ``pointmaze-umaze``, ...) or a Gymnasium id.

    ``kwargs`` (for example ``render_mode``) are passed to ``gymnasium.make`` on top of the config.
    """
    from worldsim.config import available, load_config
    from worldsim.errors import WorldsimError

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
