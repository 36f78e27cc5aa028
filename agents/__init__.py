"""Agents: one protocol (``Agent``), every agent, and ``make_agent`` to build one by name."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from worldsim.agents.protocol import Agent, LearningAgent

from worldsim.errors import WorldsimError

# name -> "module:Class"; imported on demand so that `import worldsim` stays light (the DQN agent
# pulls in stable-baselines3 and torch).
AGENT_CLASSES: dict[str, str] = {
    "random": "worldsim.agents.random_agent:RandomAgent",
    "scripted": "worldsim.agents.scripted_mario:ScriptedMarioAgent",
    "scripted-pong": "worldsim.agents.scripted_pong:ScriptedPongAgent",
    "room-explorer": "worldsim.agents.room_explorer:RoomExplorerAgent",
    "panorama-seeker": "worldsim.agents.panorama_seeker:PanoramaSeeker",
    "dqn": "worldsim.agents.dqn:DQNAgent",
    "waypoint": "worldsim.agents.waypoint_expert:WaypointExpert",
    "df_planner": "worldsim.agents.df_planner:DiffusionForcingPlanner",
    "aligner": "worldsim.agents.lora_alignment:RewardGradientAligner",
    "aligner-ddpo": "worldsim.agents.policy_gradient_alignment:PolicyGradientAligner",
}


def agent_class(name: str) -> type:
    """The class registered under ``name``; raises WorldsimError listing the known names."""
    if name not in AGENT_CLASSES:
        raise WorldsimError(f"unknown agent {name!r}: choose one of {', '.join(sorted(AGENT_CLASSES))}")
    module_name, class_name = AGENT_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_agent(name: str, env: gym.Env, **options: Any) -> Agent:
    """Build the agent ``name`` for ``env`` (it reads the spaces and anything else it needs).

    ``options`` go to the agent's constructor; a saved agent is loaded with ``path=...``.
    """
    cls = agent_class(name)
    path = options.pop("path", None)
    if path is not None:
        if not hasattr(cls, "load"):
            raise WorldsimError(f"agent {name!r} has nothing to load: drop path={path!r}")
        return cls.load(path, env=env, **options)
    return cls(env, **options)


__all__ = ["AGENT_CLASSES", "Agent", "LearningAgent", "agent_class", "make_agent"]
