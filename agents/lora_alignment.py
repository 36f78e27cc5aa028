"""Aligning a world model to rewards by fine-tuning a LoRA adapter of its denoiser while a behaviour agent dreams.

``LoraAligner`` is the agent (``act`` is its behaviour agent's action, so it plays like the agent it
was given) and everything an aligner needs besides its gradient estimate:

* the adapter: LoRA layers injected into the dream env's own world model (``worldsim.models.lora``),
  the base frozen, the base's fingerprint recorded so the adapter never loads on another model;
* the loop (``learn``): one behaviour agent per dream acts (``DreamDriver``); the aligner regenerates
  the next frames of the engine's current contexts under those actions (tiled to ``batch_size``
  when there are fewer dreams, each copy with its own sampling noise), scores them with the named
  rewards (``worldsim.rewards``) and steps only the LoRA parameters (AdamW, gradient clipping);
  then the dreams advance under the updated adapter; with ``anchor_weight``, the world model's own
  denoising loss on real steps joins the loss (``worldsim.agents.denoising_anchor``: ReFL's guard
  against an adapter that games a fixed reward network; with ``anchor_rollout``, on contexts the
  adapted model dreamed itself); with ``critic_steps``, the realism critic
  trains on the adapter's fresh dreams against real steps (``worldsim.agents.critic_refresh``);
* resuming: with ``run_dir``, the adapter, the optimizer and the update count are written atomically
  to ``run_dir/adapter`` every ``checkpoint_every`` updates and at the end (with ``curve.csv``, one
  row per update); ``learn`` on the same ``run_dir`` continues from there. The dreams themselves
  restart (they are cheap to replay and hold no learned state).

A step of ``learn(env, total_steps)`` is one update: ``batch_size`` reward queries and one optimizer
step. So two aligners trained for the same steps with the same batch size used the same number of
reward queries, which is how the reward-gradient aligner and its gradient-free baseline compare.

``RewardGradientAligner`` (VADER, AlignProp) backpropagates the rewards through the last K sampling
steps (``grad_steps``; ``cutoff="random"`` draws K uniformly in 1..grad_steps per update,
AlignProp's randomised truncation). ``worldsim.agents.policy_gradient_alignment`` has the
gradient-free baseline on the same adapter and the same loop.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from worldsim.agents.critic_refresh import CriticRefresh
from worldsim.agents.denoising_anchor import DenoisingAnchor
from worldsim.agents.dream_driver import DreamDriver, behaviour_env, dream_engine
from worldsim.agents.real_steps import RealSteps

from worldsim.core.serialization import from_dict, to_dict
from worldsim.errors import WorldsimError
from worldsim.models.lora import (
    LoraSettings,
    add_lora,
    check_base,
    count_parameters,
    load_lora_weights,
    read_adapter,
    save_adapter,
    weights_fingerprint,
)
from worldsim.rewards import RewardSet, Transition, load_rewards, per_sample, valid_mean

ADAPTER_DIR = "adapter"
CRITIC_DIR = "critic"  # the refreshed realism critic of a run with critic_steps > 0
CURVE_FILE = "curve.csv"


@dataclass
class AlignmentSettings:
    """An aligner's settings (``configs/agent/aligner.yaml``), stored with its adapter."""

    rewards: str = "realism+presence"  # reward names joined with +, each optionally NAME:WEIGHT
    reward_paths: dict[str, str | None] = field(default_factory=dict)  # reward name -> its network's checkpoint folder
    behaviour: str = "scripted"  # the agent that plays the dreams (worldsim.agents name)
    behaviour_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8  # frames regenerated and scored per update
    grad_steps: int = 1  # K: sampling steps (the last ones) that carry gradients
    cutoff: str = "last"  # "last": the last K steps; "random": the last k, k ~ U{1..K} per update (AlignProp)
    lr: float = 2e-4
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    gradient_checkpointing: bool = False  # recompute the U-Net's blocks in backward (diffusers'): less memory, more time
    dream_steps_per_update: int = 1  # env steps the dreams advance between updates
    dream_horizon: int = 32  # every dream restarts from a real context after this many steps (0: only when it ends)
    checkpoint_every: int = 50  # updates between resumable checkpoints (with run_dir)
    anchor_weight: float = 0.0  # weight of the denoising loss on real steps (ReFL's guard against gaming a reward; 0: none)
    anchor_rollout: int = 0  # the anchor's windows are first dreamed 0..N steps by the adapted model (0: always real contexts)
    critic_steps: int = 0  # realism critic steps per update on real steps against the adapter's dreams (0: a fixed critic)
    critic_lr: float = 1e-4
    real_dataset: str | None = None  # real steps of the game (Minari id, the model's training data): the anchor's and the critic's
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = 0

    def __post_init__(self):
        if self.cutoff not in ("last", "random"):
            raise WorldsimError(f"cutoff must be 'last' or 'random', got {self.cutoff!r}")
        if int(self.dream_horizon) != self.dream_horizon or self.dream_horizon < 0:
            raise WorldsimError(f"dream_horizon must be an integer >= 0, got {self.dream_horizon!r}")
        for name in ("batch_size", "grad_steps", "dream_steps_per_update", "checkpoint_every"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise WorldsimError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise WorldsimError(f"lr and grad_clip must be > 0, got {self.lr} and {self.grad_clip}")
        if not self.anchor_weight >= 0 or int(self.critic_steps) != self.critic_steps or self.critic_steps < 0 or not self.critic_lr > 0:
            raise WorldsimError(
                f"anchor_weight and critic_steps must be >= 0 and critic_lr > 0, got {self.anchor_weight!r}, {self.critic_steps!r}, {self.critic_lr!r}"
            )
        if int(self.anchor_rollout) != self.anchor_rollout or self.anchor_rollout < 0:
            raise WorldsimError(f"anchor_rollout must be an integer >= 0, got {self.anchor_rollout!r}")
        if self.anchor_rollout > 0 and not self.anchor_weight > 0:
            raise WorldsimError(
                f"anchor_rollout={self.anchor_rollout} rolls out the anchor's windows, and anchor_weight is 0: set anchor_weight > 0"
            )
        if (self.anchor_weight > 0 or self.critic_steps > 0) and not self.real_dataset:
            raise WorldsimError(
                "anchor_weight > 0 and critic_steps > 0 need real_dataset: the Minari id of real steps of the model's game (e.g. its training data)"
            )


class LoraAligner:
    """The shared part of every aligner; subclasses implement ``update(context, generator)``.

    Args:
        env: a dream env (``worldsim/Mario-v0``, single or vector): its world model gets the adapter
            (in place: the env dreams with it from now on).
        reward_set: an already built ``RewardSet`` instead of loading the ``rewards`` setting (tests).
        **settings: the fields of ``AlignmentSettings``.
    """

    method = "base"

    def __init__(self, env, *, reward_set: RewardSet | None = None, **settings: Any):
        if isinstance(settings.get("lora"), LoraSettings):
            settings["lora"] = to_dict(settings["lora"])
        self.settings = from_dict(AlignmentSettings, settings, where="aligner")
        self.engine = dream_engine(env)
        self.model, self.device = self.engine.model, self.engine.device
        # everything that can fail on bad input comes before the env's model is touched
        self.rewards = (
            reward_set if reward_set is not None else load_rewards(self.settings.rewards, self.settings.reward_paths, self.device)
        )
        for module in self.rewards.modules():
            module.requires_grad_(False).eval()
        self.behaviour = self._make_behaviour(behaviour_env(env))
        if self.settings.critic_steps > 0 and "realism" not in self.rewards.rewards:
            raise WorldsimError(
                f"critic_steps > 0 trains the realism critic, and the rewards ({'+'.join(self.rewards.rewards)}) have none: add realism"
            )
        real_steps = RealSteps(self.model, self.settings.real_dataset, self.settings.seed) if self.settings.real_dataset else None
        self.anchor = (
            DenoisingAnchor(self.model, real_steps, self.settings.batch_size, self.settings.anchor_rollout)
            if self.settings.anchor_weight > 0
            else None
        )
        self.critic_refresh = (
            CriticRefresh(self.rewards.rewards["realism"].critic, real_steps, self.settings.critic_steps, self.settings.critic_lr)
            if self.settings.critic_steps > 0
            else None
        )
        self.scored_frames: torch.Tensor | None = None  # set by update: the frames the rewards scored (detached)
        self.base_fingerprint = weights_fingerprint(self.model)  # before the adapter renames its weights
        self.lora_parameters = add_lora(self.model, self.settings.lora)
        if self.settings.gradient_checkpointing:
            self.model.denoiser.network.unet.enable_gradient_checkpointing()
        self.optimizer = torch.optim.AdamW(self.lora_parameters, lr=self.settings.lr, weight_decay=self.settings.weight_decay)
        self.updates, self.elapsed = 0, 0.0
        self.curve: list[dict[str, float]] = []

    def _make_behaviour(self, env):
        from worldsim.agents import make_agent

        try:
            return make_agent(self.settings.behaviour, env, **dict(self.settings.behaviour_options))
        except TypeError as error:
            raise WorldsimError(
                f"behaviour_options {self.settings.behaviour_options} do not fit the {self.settings.behaviour!r} agent ({error}): "
                "pass only its constructor's options"
            ) from None

    # ----------------------------------------------------------------------------- agent protocol

    def reset(self, seed: int | None = None) -> None:
        self.behaviour.reset(seed)

    def act(self, observation: Any, info: dict[str, Any] | None = None) -> Any:
        """The behaviour agent's action: the aligner changes the dream, not how it is played."""
        return self.behaviour.act(observation, info)

    @property
    def parameter_counts(self) -> dict[str, int]:
        return count_parameters(self.model)

    def learn(self, env, total_steps: int, run_dir: str | os.PathLike | None = None, progress: bool = False) -> None:
        """Update the adapter until ``total_steps`` updates are done in all (see the module docstring)."""
        if dream_engine(env).model is not self.model:
            raise WorldsimError("learn on the env this aligner was made for: its adapter lives in that env's world model")
        run_dir = Path(run_dir) if run_dir is not None else None
        if run_dir is not None and (run_dir / ADAPTER_DIR).is_dir() and self.updates == 0:
            self._resume(run_dir / ADAPTER_DIR)
            if self.critic_refresh is not None and (run_dir / CRITIC_DIR).is_dir():
                self.critic_refresh.restore(run_dir / CRITIC_DIR)
        if self.updates >= total_steps:
            return
        driver = DreamDriver(env, self._make_behaviour, max(self.rewards.history_frames, 1), seed=self.settings.seed + self.updates)
        generator = torch.Generator(self.device)
        bar = tqdm(total=total_steps, initial=self.updates, disable=not progress, desc=self.method, unit="update")
        started = time.perf_counter() - self.elapsed
        while self.updates < total_steps:
            actions = driver.actions()
            # one seed per update: a resumed run draws the noise the uninterrupted one would have
            generator.manual_seed(self.settings.seed * 1_000_003 + self.updates)
            batch = self._batch(driver.context(actions))
            stats = self.update(batch, generator)
            if self.critic_refresh is not None:
                stats |= self.critic_refresh.step(self.updates, batch["history"][:, -1], self.scored_frames)
            driver.step(actions)
            for _ in range(self.settings.dream_steps_per_update - 1):
                driver.step(driver.actions())
            if self.settings.dream_horizon and driver.steps >= self.settings.dream_horizon:
                # a dream far from its real start drifts (Mario lost, the scene smeared): the
                # adapter should learn from contexts within reach of real ones
                driver.restart()
            self.updates += 1
            self.elapsed = time.perf_counter() - started
            self.curve.append(
                {"update": self.updates, "queries": self.updates * self.settings.batch_size, "seconds": round(self.elapsed, 3), **stats}
            )
            bar.update(1)
            bar.set_postfix(reward=f"{stats['reward']:.3f}")
            if run_dir is not None and (self.updates % self.settings.checkpoint_every == 0 or self.updates >= total_steps):
                self.save_run(run_dir)
        bar.close()

    def _batch(self, context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The dreams' contexts tiled (or cut) to ``batch_size`` rows."""
        rows = torch.arange(self.settings.batch_size, device=self.device) % self.engine.num_dreams
        return {key: value[rows] for key, value in context.items()}

    def grad_steps(self, generator: torch.Generator) -> int:
        """K for this update: ``grad_steps``, or for ``cutoff="random"`` a draw in 1..grad_steps;
        never more than the sampler's steps (then every step carries gradients)."""
        k = self.settings.grad_steps
        if self.settings.cutoff == "random":
            k = int(torch.randint(1, k + 1, (1,), generator=generator, device=generator.device))
        return min(k, len(self.model.sampler.sigmas))

    def generate(self, batch: dict[str, torch.Tensor], generator: torch.Generator, grad_steps: int) -> torch.Tensor:
        """Next frames ``float[B, C, H, W]`` (quantised, straight-through) of ``batch``'s contexts,
        with gradients through the last ``grad_steps`` sampling steps."""
        with torch.enable_grad():
            return self.model.sampler.sample(
                self.model.denoiser, batch["frames"], batch["actions"], generator=generator, grad_steps=grad_steps
            )

    def transition(self, batch: dict[str, torch.Tensor], next_frame: torch.Tensor) -> Transition:
        return Transition(batch["history"], batch["history_actions"], batch["action"], next_frame)

    def step_optimizer(self, loss: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        """Add the anchor (if any) to ``loss``; backward, clip, AdamW on the LoRA parameters.
        Returns the gradient norm before clipping and the anchor's loss."""
        stats = {}
        if self.anchor is not None:
            anchor = self.anchor.loss(self.updates, generator)
            loss = loss + self.settings.anchor_weight * anchor
            stats["anchor_loss"] = float(anchor.detach())
            stats["anchor_dreamed_steps"] = self.anchor.rollout_steps(self.updates)
        if not torch.isfinite(loss):
            raise WorldsimError(
                f"the alignment loss is {loss.item()} at update {self.updates}: lower the learning rate or check the rewards"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.lora_parameters, self.settings.grad_clip)
        self.optimizer.step()
        return {"grad_norm": float(norm), **stats}

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, float]:
        """One optimizer step of the adapter on ``batch``'s contexts; returns the curve's row and
        leaves the frames the rewards scored in ``self.scored_frames`` (the refreshed critic's negatives)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- saving, resuming

    def saved_settings(self) -> dict[str, Any]:
        """What the adapter records of how it was trained (and what a resumed run must match)."""
        return {"method": self.method, **to_dict(self.settings)}

    def _info(self) -> dict[str, Any]:
        return {"aligner": self.saved_settings(), "lora_parameters": self.parameter_counts["lora"]}

    def save(self, path: str | os.PathLike) -> None:
        """The adapter (with its settings and base fingerprint) as a checkpoint folder; ``gym.make(...,
        adapter=path)`` dreams with it, ``load(path, env=...)`` trains it further."""
        save_adapter(path, self.model, self.settings.lora, self.base_fingerprint, info=self._info())

    def save_run(self, run_dir: str | os.PathLike) -> None:
        """The resumable state in ``run_dir/adapter`` (adapter, optimizer, updates, curve) and ``run_dir/curve.csv``."""
        run_dir = Path(run_dir)
        state = {"updates": self.updates, "elapsed_seconds": self.elapsed, "curve": self.curve}
        if self.critic_refresh is not None:  # before the adapter, whose update count a resume starts from
            self.critic_refresh.save(run_dir / CRITIC_DIR)
        save_adapter(
            run_dir / ADAPTER_DIR,
            self.model,
            self.settings.lora,
            self.base_fingerprint,
            info=self._info(),
            optimizer=self.optimizer,
            training_state=state,
        )
        write_atomically(run_dir / CURVE_FILE, curve_csv(self.curve))

    def _restore(self, adapter) -> None:
        check_base(adapter, self.model, self.base_fingerprint)
        load_lora_weights(self.model, adapter.weights, where=f"adapter {adapter.checkpoint.path}")
        checkpoint = adapter.checkpoint
        if checkpoint.optimizer_state is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
        self.updates = int(checkpoint.training_state.get("updates", 0))
        self.elapsed = float(checkpoint.training_state.get("elapsed_seconds", 0.0))
        self.curve = list(checkpoint.training_state.get("curve", []))

    def _resume(self, folder: Path) -> None:
        adapter = read_adapter(folder, self.device)
        if adapter.info.get("aligner") != self.saved_settings():
            raise WorldsimError(
                f"{folder} was trained with other aligner settings or another method: use a new --out folder, or the same settings as before"
            )
        self._restore(adapter)

    @classmethod
    def load(cls, path: str | os.PathLike, env=None, **options: Any) -> LoraAligner:
        """An aligner on ``env`` with the adapter (and, if saved by a run, the optimizer) at ``path``;
        ``options`` override its saved settings."""
        if env is None:
            raise WorldsimError(f"{cls.__name__}.load needs the dream env whose world model the adapter was trained on")
        adapter = read_adapter(path)
        settings = {key: value for key, value in adapter.info.get("aligner", {}).items() if key != "method"}
        aligner = cls(env, **(settings | options))
        aligner._restore(adapter)
        return aligner


class RewardGradientAligner(LoraAligner):
    """VADER: the rewards' gradient, backpropagated through the last K sampling steps into the LoRA.

    ``update``: regenerate the batch's next frames with gradients through the last K denoiser calls
    (the earlier ones run without, so no gradient reaches them), score them, and ascend the
    weighted sum of the rewards' means (each over the samples where it is defined).
    """

    method = "reward_gradient"

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, float]:
        k = self.grad_steps(generator)
        next_frame = self.generate(batch, generator, k)
        self.scored_frames = next_frame.detach()
        with torch.enable_grad():
            scores = self.rewards.score(self.transition(batch, next_frame))
            objective = per_sample(scores, self.rewards.weights).mean()
        optimizer_stats = self.step_optimizer(-objective, generator)
        return {
            "reward": float(objective.detach()),
            **{name: valid_mean(s) for name, s in scores.items()},
            **optimizer_stats,
            "grad_steps": k,
        }


def curve_csv(rows: list[dict[str, float]]) -> str:
    """The per-update curve as CSV text (columns: the union of the rows' keys, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


__all__ = ["AlignmentSettings", "LoraAligner", "RewardGradientAligner"]
