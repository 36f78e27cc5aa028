"""``worldsim learn``: train a learning agent in an env built from its config, evaluating as it goes.

The run folder holds ``agent.zip`` (written every ``eval_every`` steps and at the end), ``best.zip``
and ``eval.csv`` (the agent evaluates at both, so every run has them) and ``tensorboard/``. Running
again with the same folder resumes: a larger ``steps`` continues the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from worldsim.errors import WorldsimError
from worldsim.eval.episodes import evaluate_agent

EVAL_FIRST_SEED = 10_000  # evaluation episodes use seeds 10000, 10001, ...: never the training seeds


def learn_agent(
    env_name: str,
    agent_spec: str,
    steps: int,
    out: str | os.PathLike,
    overrides: list[str] | None = None,
    *,
    eval_every: int = 25_000,
    eval_episodes: int = 10,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train ``agent_spec`` (one learning agent, e.g. ``dqn``) for ``steps`` env steps in total;
    returns the last evaluation's scores. ``log`` gets the lines a user reads."""
    from worldsim.agents import agent_class
    from worldsim.config import load_config
    from worldsim.envs import make_env
    from worldsim.eval.agent_configs import parse_agent_mix, split_overrides

    if steps < 0:
        raise WorldsimError(f"--steps must be >= 0, got {steps}")
    mix = parse_agent_mix(agent_spec)
    if len(mix) != 1:
        raise WorldsimError(f"learn trains one agent, got {agent_spec!r}: pass --agent NAME")
    name = mix[0][0]
    cls = agent_class(name)
    if not hasattr(cls, "learn"):
        raise WorldsimError(f"agent {name!r} does not learn: choose a learning agent such as dqn")
    out = Path(out)
    env_overrides, agent_overrides = split_overrides(list(overrides or []), [name])
    env = make_env(env_name, env_overrides)
    eval_env = make_env(env_name, env_overrides)
    config = load_config("agent", name, agent_overrides[name])
    checkpoint = out / "agent.zip"
    if checkpoint.exists():
        agent = cls.load(checkpoint, env=env, epsilon=config.get("epsilon", 0.0))
        log(f"resuming {checkpoint} at step {agent.trained_steps}")
    else:
        config.pop("path", None)
        agent = cls(env, seed=seed, tensorboard_log=str(out / "tensorboard"), **config)
    remaining = max(steps - agent.trained_steps, 0)

    if eval_every <= 0 or eval_episodes <= 0:
        raise WorldsimError(f"--eval-every and --eval-episodes must be positive, got {eval_every} and {eval_episodes}")
    last: dict[str, float] = {}

    def evaluate(agent_) -> dict[str, float]:
        last.clear()
        last.update(evaluate_agent(eval_env, agent_, episodes=eval_episodes, first_seed=EVAL_FIRST_SEED))
        return dict(last)

    agent.learn(env, remaining, run_dir=out, evaluate=evaluate, eval_every=eval_every, checkpoint_every=eval_every)
    log(f"trained {agent.trained_steps} steps; agent saved to {checkpoint}")
    # The agent evaluates at the end of every run (eval.csv, best.zip); its last scores:
    if last:
        log("evaluation: " + ", ".join(f"{k}={v:g}" for k, v in last.items()))
    log(f"best agent so far: {out / 'best.zip'}; learning curve: {out / 'eval.csv'}")
    return last
