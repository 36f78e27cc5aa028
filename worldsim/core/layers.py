"""worldsim's layers, top to bottom: a module imports only from its own layer or the layers below.

This constant is the one statement of the order; ``tests/test_layers.py`` parses every module's
imports (top-level and inside functions) and fails naming any import of a higher layer, and the
README's Layout section lists the same layers. A module belongs to the layer of the longest prefix
below that names it (``worldsim.envs.real.mario`` is in ``envs``); a module no layer names fails the
test too, so a new package is placed here first.

Where the less obvious modules sit, and why:

* ``worldsim`` itself (the package's ``__init__``) is at the top beside the CLI: importing it
  registers the envs, so it imports ``worldsim.envs``; nothing inside the package imports it.
* ``worldsim.errors``, ``worldsim.config`` (reading the Hydra YAML shipped in ``worldsim.configs``)
  and ``worldsim.video`` (frames to an mp4 or gif) import nothing of worldsim but the errors: they
  are core, usable from every layer. Building an env from its config is ``worldsim.envs.make_env``.
* ``worldsim.eval`` and ``worldsim.agents`` are one layer: planners use models, evaluations run
  agents (``worldsim.eval.collect`` runs agents in envs to write datasets).
* ``worldsim.rewards`` sits just above ``models``: a reward is a network (or a probe from
  ``models``) plus a rule scoring generated transitions, so it uses models and core only; ``train``
  trains its networks and the aligners (agents) and reports (eval) score with it, while the engine
  and envs never need one.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "worldsim"


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # packages and modules in the layer (each with everything below it)
    holds: str


LAYERS: tuple[Layer, ...] = (
    Layer("cli", ("worldsim.cli", ROOT), "the command table: each command parses its arguments and calls one function"),
    Layer("eval, agents", ("worldsim.eval", "worldsim.agents"), "benchmarks, fidelity, rollouts and collection; the agent protocol and every agent"),
    Layer("envs", ("worldsim.envs",), "front-ends: the Gymnasium dream env and vector env, real-game adapters (envs/real), registration"),
    Layer("engine", ("worldsim.engine",), "N dreams' state (frames, actions, model state) stepped in one batched call"),
    Layer("train", ("worldsim.train",), "one training loop; tasks plug in (data, loss, export, model card)"),
    Layer("rewards", ("worldsim.rewards",), "differentiable scores of generated transitions (realism, player presence, action consistency)"),
    Layer("models", ("worldsim.models",), "networks: context modules, U-Nets, end model and heads, the trajectory transformer"),
    Layer("diffusion", ("worldsim.diffusion",), "EDM preconditioning, noise levels, samplers, diffusion forcing"),
    Layer("data", ("worldsim.data",), "Minari I/O, training windows, labels"),
    Layer(
        "core",
        ("worldsim.core", "worldsim.errors", "worldsim.config", "worldsim.video", "worldsim.configs"),
        "errors, checkpoints and their kinds, shipped-model lookup, (de)serialisation, game description, Hydra configs, video files",
    ),
)


def layer_index(module: str) -> int | None:
    """The position in ``LAYERS`` (0 = top) of the layer that holds ``module``, None if none does."""
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, layer in enumerate(LAYERS):
        for prefix in layer.modules:
            # the package root names only its own __init__, not everything under it
            if module == prefix or (prefix != ROOT and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]
