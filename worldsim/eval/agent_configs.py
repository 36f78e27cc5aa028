"""Agents from the command line's words: a mix spec (``dqn:0.7,scripted:0.3``), Hydra overrides
routed to the env or to one agent, and the agents built from ``configs/agent/<name>.yaml``.

``worldsim collect``, ``learn``, ``rollout`` and ``dream`` share these, so an agent is configured the
same way whatever the command.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from worldsim.errors import WorldsimError
from worldsim.eval.collect import AgentShare


def parse_agent_mix(spec: str) -> list[tuple[str, float]]:
    """``"dqn:0.7,scripted:0.3"`` -> ``[("dqn", 0.7), ("scripted", 0.3)]``; ``"random"`` -> weight 1."""
    mix = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise WorldsimError(
                f"agent weight {weight!r} in {spec!r} is not a number: write NAME:WEIGHT, e.g. dqn:0.7,scripted:0.3"
            ) from None
        mix.append((name, value))
    names = [name for name, _ in mix]
    if len(set(names)) != len(names):
        raise WorldsimError(f"agent mix {spec!r} names an agent twice: give each agent once with its weight")
    return mix


def single_agent(spec: str, verb: str) -> str:
    """The one agent name in ``spec``; a mix is an error saying that ``verb`` (``"rollout plays"``) takes one."""
    mix = parse_agent_mix(spec)
    if len(mix) != 1:
        raise WorldsimError(f"{verb} one agent, got {spec!r}: pass --agent NAME")
    return mix[0][0]


def split_overrides(overrides: list[str], agent_names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Route ``env.*`` overrides to the env and ``NAME.*`` / ``agent.*`` to the agents' configs."""
    env_overrides: list[str] = []
    agent_overrides: dict[str, list[str]] = {name: [] for name in agent_names}
    for override in overrides:
        if "=" not in override:
            raise WorldsimError(f"unexpected argument {override!r}: overrides look like env.kwargs.level=1-2 or scripted.epsilon=0.1")
        prefix_symbol = "+" if override.startswith("+") else ""
        key = override.lstrip("+~")
        head, _, rest = key.partition(".")
        if head == "env":
            env_overrides.append(override)
        elif head in agent_overrides or (head == "agent" and len(agent_names) == 1):
            target = head if head in agent_overrides else agent_names[0]
            agent_overrides[target].append(f"{prefix_symbol}agent.{rest}")
        else:
            known = ", ".join(["env", *agent_names])
            raise WorldsimError(f"override {override!r} names {head!r}, which is not in this command: start it with one of {known}")
    return env_overrides, agent_overrides


def build_agents(mix: list[tuple[str, float]], overrides: dict[str, list[str]], env: gym.Env, *, need_trained: bool) -> list[AgentShare]:
    """Each agent of ``mix`` built for ``env`` from its config and overrides; with ``need_trained``,
    an agent whose config wants a trained ``path`` and has none is one error saying how to train it."""
    from worldsim.agents import agent_class, make_agent
    from worldsim.config import load_config

    shares = []
    for name, weight in mix:
        agent_class(name)  # unknown names fail here, before configs are read
        config: dict[str, Any] = load_config("agent", name, overrides[name])
        if need_trained and "path" in config and config["path"] is None:
            raise WorldsimError(
                f"the {name} agent must be trained first: pass {name}.path=PATH "
                f"(train one with `worldsim learn --agent {name} --out DIR`, then use DIR/agent.zip)"
            )
        shares.append(AgentShare(name, make_agent(name, env, **config), weight))
    return shares
