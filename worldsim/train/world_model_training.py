"""``worldsim train --model mario``: the world model's two training tasks, and its export.

The denoiser and the end model read the same recorded episodes but share no weights, so they train
as two tasks of the one loop (``worldsim.train.loop``), each resumable on its own, in any order or
at the same time (``train.phases=[end_model]`` in one process, ``[denoiser]`` in another):

* ``denoiser``: windows of K + U steps; the first generated frame from the real context, each
  later one from a context ending in the model's own quantised generations (DIAMOND's CS:GO
  unroll), drawn action-balanced. With a memory (``model.memory``), long teacher-forced windows
  instead, every frame read by the memory and a few of them denoised;
* ``end_model``: longer windows of real steps, burned in on the first K like a dream's reset, then
  scored on every later transition (reward, progress, end class), episode ends oversampled;
* ``end_classifier`` (when the model has one): windows of K + 1 steps, labelled with the end class
  of the last, episode ends oversampled; in ``generated_fraction`` of them the last frame is the
  denoiser's own sample from the real context, because in a dream the classifier judges generated
  frames, and the denoiser draws a death far less clearly than the game does. Every
  ``validation_every``-th episode is held out; on those (with generated last frames), the decision
  bias of each end class is set for the best F1 at export.

``train.base_model`` starts from a trained world model: a phase that is neither asked for nor in
the run folder keeps that model's weights (when its part of the config is the same), so one part
can be retrained or added without retraining the rest.

When every phase has reached its steps (or comes from the base model), ``model/`` is written: the world model ready for
``gym.make("worldsim/Mario-v0", checkpoint=...)`` (EMA weights, ``config.json``,
``start_states.npz``, a model card). ``curve.csv`` holds the held-out fidelity the caller's
``evaluate`` callback measures during the denoiser phase.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.utils.data import RandomSampler, Sampler

from worldsim.core.checkpoint import load_checkpoint, read_config, save_checkpoint
from worldsim.core.checkpoint_kinds import WORLD_MODEL, require_kind
from worldsim.core.serialization import from_dict, to_dict
from worldsim.data.minari_io import load_dataset
from worldsim.data.sequences import SequenceDataset, WindowWeight
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.errors import WorldsimError
from worldsim.models.end_classifier import EndClassifierConfig, best_f1_bias
from worldsim.models.world_model import START_STATES_FILE, StartStates, WorldModel, WorldModelConfig
from worldsim.train.loop import LoopConfig, budget_spent, hardware_description, start_accelerator, tensorboard_writer, train

MODEL_DIR = "model"
PHASES = ("end_model", "denoiser", "end_classifier")  # the classifier learns from the denoiser's frames: after it


@dataclass
class DataConfig:
    datasets: list[str] = field(default_factory=list)  # Minari ids (pooled); windows never cross an episode
    heldout: str | None = None  # for the fidelity curve during training


@dataclass
class DenoiserPhase(LoopConfig):
    unroll_steps: int = 2  # frames generated per window: the 2nd onward from the model's own frames
    balance_actions: bool = True  # every action equally often as the generated step's action
    end_weight: float = 1.0  # windows that end an episode drawn this many times more often
    memory_frames: int = 32  # with model.memory: frames per window, all read by the memory (no unroll)
    memory_targets: int = 4  # with model.memory: frames of each window denoised, after at least K
    # With model.memory: the share of those drawn from the window's returns, frames that show again a
    # view older than their K-frame context (bit for bit), where only the memory knows the answer;
    # 0 draws them all uniformly (in the room explorer's windows 29% of frames are returns).
    memory_return_targets: float = 0.0
    # With model.memory.view_bank: also train the recall directly (loss "memory_views", weighed by
    # loss_weights): the cross-entropy of its scores against the window's frame nearest the denoised one.
    memory_view_match: bool = False
    # The context blur (model.edm.context_blur_max) only from this step on: the denoiser first learns
    # sharp frames, then to re-sharpen blurred ones (Pong: blurred from step 0, the dream lost its
    # ball in 62% of 64 episodes; from step 3000 of 4500, in 31%; BENCHMARKS.md).
    context_blur_from_step: int = 0
    # Windows whose generated step's label lies in a range drawn more often (data.sequences.WindowWeight).
    label_weights: list[WindowWeight] = field(default_factory=list)


@dataclass
class EndModelPhase(LoopConfig):
    scored_steps: int = 12  # transitions scored per window, after the K-frame burn-in
    balance_actions: bool = False
    end_weight: float = 10.0


@dataclass
class EndClassifierPhase(LoopConfig):
    balance_actions: bool = False
    end_weight: float = 20.0
    validation_every: int = 10  # every Nth episode is held out of training and sets the decision bias
    generated_fraction: float = 0.5  # windows whose last frame is the denoiser's sample, not the real one
    min_validation_ends: int = 10  # an end class seen fewer times there gets the prior correction instead
    # Training windows also up to this many frames past a terminated episode's end, the end frame
    # held and labelled the end (SequenceDataset's hold_end): in a dream the classifier then gets
    # more than one step to call an end. Validation keeps the end steps alone.
    hold_end: int = 0


@dataclass
class WorldModelTraining:
    """``configs/train/mario.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    denoiser: DenoiserPhase = field(default_factory=DenoiserPhase)
    end_model: EndModelPhase = field(default_factory=EndModelPhase)
    end_classifier: EndClassifierPhase = field(default_factory=EndClassifierPhase)
    base_model: str | None = None  # a world model checkpoint whose weights the phases not trained here keep
    mixed_precision: str = "no"  # "bf16" or "fp16" on a GPU (accelerate)
    threads: int | None = None  # torch CPU threads; None: torch's default
    seed: int = 0
    start_states: int = 64  # real first frames of training episodes, for the env's reset
    # The step of each episode a start state's context ends at. 0: the first frame repeated K times,
    # what a real reset shows. K - 1: the first K real frames with their actions, for a game whose
    # state one frame does not show (Pong's serve direction: from a still ball the dream picks one).
    start_state_step: int = 0


class DenoiserObjective(nn.Module):
    """``forward(frames float[B, K + U, C, H, W], actions int64[B, K + U])`` -> ``{"denoiser": loss}``.

    With a memory, windows are long (``memory_frames``) and teacher-forced: the memory reads every
    frame of the window (with context noise, as dreamed frames carry errors) and ``memory_targets``
    frames of each, drawn after the first K, are denoised from their K-frame context and the
    memory's output after the frame before them. With ``model.memory.recall_lags``, a second loss
    (``memory_recall``, weighed by ``loss_weights``) asks the memory to redraw thumbnails of the frames
    that many steps back.
    """

    def __init__(
        self,
        world_model: WorldModel,
        memory_targets: int = 4,
        context_blur_from_step: int = 0,
        memory_return_targets: float = 0.0,
        memory_view_match: bool = False,
    ):
        super().__init__()
        self.denoiser = world_model.denoiser  # the only trained weights; names match the world model's
        self._sampler = world_model.sampler
        self._context_length = world_model.context_length
        self._memory_targets = memory_targets
        self._memory_return_targets = memory_return_targets
        self._memory_view_match = memory_view_match
        self._blur_from_step = context_blur_from_step
        self._step = 0  # steps taken, as the loop last told (one it never tells is at the start)

    def on_step(self, step: int) -> None:
        """Called by the training loop before each step (``step`` taken so far): starts the context blur."""
        self._step = step

    @property
    def _context_blur_max(self) -> float | None:
        """This step's context blur for the loss: None (the config's) from ``context_blur_from_step`` on, else 0."""
        return None if self._step >= self._blur_from_step else 0.0

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, **labels) -> dict[str, torch.Tensor]:
        if self.denoiser.memory is not None:
            return self._remembering_losses(frames, actions)
        k = self._context_length
        unroll = frames.shape[1] - k
        context, loss = frames[:, :k], frames.new_zeros(())
        for u in range(unroll):
            t = k + u
            step_actions = actions[:, t - k + 1 : t + 1]
            step_loss = self.denoiser.loss(
                frames[:, t], context, step_actions, sampler_sigmas=self._sampler.sigmas, context_blur_max=self._context_blur_max
            )
            loss = loss + step_loss / unroll
            if u < unroll - 1:
                with torch.no_grad():
                    generated = self._sampler.sample(self.denoiser, context, step_actions)
                context = torch.cat([context[:, 1:], generated[:, None]], dim=1)
        return {"denoiser": loss}

    def _remembering_losses(self, frames: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        k, batch = self._context_length, actions.shape[0]
        sigma_max = self.denoiser.training_config.context_sigma_max
        noise_level = sigma_max * torch.rand(batch, 1, 1, 1, 1, device=frames.device)
        seen = frames[:, :-1] + noise_level * torch.randn_like(frames[:, :-1])
        memory = self.denoiser.memory(seen, actions[:, 1:])  # entry s: frames 0..s, each with the action taken at it
        targets = self._draw_targets(frames)
        rows = torch.arange(batch, device=frames.device)[:, None].expand_as(targets)
        wanted = frames[rows, targets]  # [B, P, C, H, W]: the clean frames to denoise
        offsets = torch.arange(-k, 0, device=frames.device)
        context = frames[rows[..., None], targets[..., None] + offsets]  # [B, P, K, C, H, W]
        step_actions = actions[rows[..., None], targets[..., None] + offsets + 1]  # [B, P, K]
        views = None
        if self.denoiser.recalls_views:  # the bank holds the frames the memory read, context noise included
            scores = self.denoiser.memory.window_scores(memory, actions[:, 1:], targets)
            views = self.denoiser.memory.recalled_views(scores, seen).flatten(0, 1)
        losses = {
            "denoiser": self.denoiser.loss(
                wanted.flatten(0, 1),
                context.flatten(0, 1),
                step_actions.flatten(0, 1),
                sampler_sigmas=self._sampler.sigmas,
                memory=memory[rows, targets - 1].flatten(0, 1),
                context_blur_max=self._context_blur_max,
                view=views,
            )
        }
        if self.denoiser.memory.config.recall_lags:
            # weighed by train.denoiser.loss_weights.memory_recall (1 by default)
            losses["memory_recall"] = self.denoiser.memory.recall_loss(memory, frames[:, :-1])
        if self._memory_view_match:
            # weighed by train.denoiser.loss_weights.memory_views (1 by default)
            losses["memory_views"] = self.denoiser.memory.view_match_loss(scores, frames[:, :-1], wanted)
        return losses

    def _draw_targets(self, frames: torch.Tensor) -> torch.Tensor:
        """``int64[B, memory_targets]``: the frames of each window to denoise, in ``[K, L)``, without
        repeats; up to ``memory_return_targets`` of them returns (``return_frames``), the rest uniform."""
        k, (batch, length) = self._context_length, frames.shape[:2]
        keys = torch.rand(batch, length - k, device=frames.device)
        wanted = round(self._memory_return_targets * self._memory_targets)
        if wanted:
            returns = return_frames(frames, k)[:, k:]
            # a random order of each window's returns first; the first `wanted` of them go ahead of every other frame
            rank = torch.where(returns, keys, 2.0).argsort(dim=1).argsort(dim=1)
            keys = torch.where(returns & (rank < wanted), keys - 1.0, keys)
        return keys.argsort(dim=1)[:, : self._memory_targets] + k


def return_frames(frames: torch.Tensor, k: int) -> torch.Tensor:
    """``bool[B, L]`` for windows ``float[B, L, C, H, W]``: frame ``t`` equals, bit for bit, a frame
    before its K-frame context (``s < t - K``) and none in it: a view the dream shows again, which a
    frame stack cannot know and a memory can."""
    flat = frames.flatten(2)
    # exact distances (not the matrix-product shortcut), so equal frames are exactly 0 apart
    same = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist") == 0  # [B, L, L]
    t = torch.arange(frames.shape[1], device=frames.device)
    lag = t[:, None] - t[None, :]  # [t, s]
    older = (same & (lag > k)).any(dim=2)
    in_context = (same & (lag >= 1) & (lag <= k)).any(dim=2)
    return older & ~in_context


class EndModelObjective(nn.Module):
    """``forward(frames, actions, rewards, progress, end_class)`` on windows ``[B, L, ...]`` of real
    steps -> ``{"reward", "progress", "end"}`` losses on the transitions after the K-frame burn-in."""

    def __init__(self, world_model: WorldModel):
        super().__init__()
        self.end_model = world_model.end_model
        self._context_length = world_model.context_length

    def forward(self, frames, actions, rewards, progress, end_class, agent_rewards=None) -> dict[str, torch.Tensor]:
        k = self._context_length
        outputs, _ = self.end_model.sequence(frames, actions)
        scored = slice(k - 1, None)  # outputs[:, i] is the transition into frame i + 1
        losses = {
            "reward": nn.functional.smooth_l1_loss(outputs["reward"][:, scored], rewards[:, k:]),
            "progress": nn.functional.smooth_l1_loss(outputs["progress"][:, scored], progress[:, k:]),
            "end": nn.functional.cross_entropy(outputs["end"][:, scored].flatten(0, 1), end_class[:, k:].flatten()),
        }
        if agent_rewards is not None:  # counted in the reward's weight: one reward loss per agent, averaged
            losses["reward"] = (
                losses["reward"] + nn.functional.smooth_l1_loss(outputs["agent_rewards"][:, scored], agent_rewards[:, k:])
            ) / 2
        return losses


class EndClassifierObjective(nn.Module):
    """``forward(frames float[B, K + 1, C, H, W], actions, end_class, ...)`` -> ``{"end": loss}`` on
    the end class of each window's last step, judged from the classifier's last frames; in the
    first ``generated_fraction`` of the batch (the batch is drawn at random) the last frame is the
    denoiser's sample from the K real frames before it."""

    def __init__(self, world_model: WorldModel, generated_fraction: float):
        super().__init__()
        self.end_classifier = world_model.end_classifier  # the only trained weights
        self._world_model = [world_model]  # not a submodule: its denoiser is not trained here
        self.generated_fraction = generated_fraction

    def forward(self, frames, actions, end_class, **labels) -> dict[str, torch.Tensor]:
        count, world_model = round(self.generated_fraction * len(frames)), self._world_model[0]
        if count and next(world_model.denoiser.parameters()).device != frames.device:
            world_model.denoiser.to(frames.device)  # the loop moved only the classifier
        frames = with_generated_last_frames(world_model, frames, actions, count)
        return {"end": nn.functional.cross_entropy(self.end_classifier.last_step(frames, actions[:, -1]), end_class[:, -1])}


@torch.no_grad()
def with_generated_last_frames(
    world_model: WorldModel, frames: torch.Tensor, actions: torch.Tensor, count: int, generator=None
) -> torch.Tensor:
    """``frames float[B, K + 1, ...]`` with the last frame of the first ``count`` windows replaced by
    the world model's sample from the K frames before it under the recorded actions (a dream step)."""
    if count <= 0:
        return frames
    k = world_model.context_length
    was_training = world_model.denoiser.training
    world_model.denoiser.eval()
    generated = world_model.sampler.sample(world_model.denoiser, frames[:count, :k], actions[:count, 1 : k + 1], generator=generator)
    world_model.denoiser.train(was_training)
    return torch.cat([torch.cat([frames[:count, :k], generated[:, None]], dim=1), frames[count:]])


class WindowTask:
    """A training task over windows of recorded steps (``worldsim.train.loop.TrainingTask``)."""

    def __init__(self, name, objective, saved_config, dataset, game, balance_actions, end_weight, evaluate=None, label_weights=()):
        self.name, self.objective, self.saved_config, self.dataset, self.game = name, objective, saved_config, dataset, game
        self.balance_actions, self.end_weight, self._evaluate = balance_actions, end_weight, evaluate
        self.label_weights = list(label_weights)

    def sampler(self, num_samples: int, generator: torch.Generator) -> Sampler:
        if self.balance_actions or self.end_weight != 1.0 or self.label_weights:
            return self.dataset.weighted_sampler(
                num_samples, generator, balance_actions=self.balance_actions, end_weight=self.end_weight, label_weights=self.label_weights
            )
        return RandomSampler(self.dataset, replacement=True, num_samples=num_samples, generator=generator)

    def to_batch(self, batch, device):
        return model_batch(batch, self.game, device)

    def accepts(self, saved: dict[str, Any]) -> bool:
        """Whether a checkpoint's config is this phase's: its model config is read by today's code
        (fields added since then take their defaults; older checkpoints stored the whole model
        config) and compared on the parts this phase's weights depend on."""
        try:
            model = phase_config(WorldModelConfig.from_dict(saved["model"]), self.name)
        except (KeyError, TypeError, ValueError):
            return False
        return model == self.saved_config["model"] and {**saved, "model": model} == self.saved_config

    def evaluate(self, objective, step, hours, loss, writer) -> None:
        if self._evaluate is not None:
            self._evaluate(objective, step, hours, loss, writer)


def train_world_model(
    model_values: dict[str, Any],
    train_values: dict[str, Any],
    out: str | Path,
    *,
    command: str = "",
    progress: bool = True,
    heldout_evaluator: Callable[[WorldModel, WorldModelTraining, Path], Callable] | None = None,
) -> Path | None:
    """Train (or resume) the phases in ``train.phases``; returns ``out/model`` once every phase is
    done (else None). ``heldout_evaluator(world_model, cfg, out)`` makes the denoiser phase's
    evaluation callback (the CLI passes the fidelity curve; training itself imports no evaluation)."""
    out = Path(out)
    cfg = from_dict(WorldModelTraining, train_values, where="train")
    unknown = set(cfg.phases) - set(PHASES)
    if unknown or not cfg.phases:
        raise WorldsimError(f"train.phases {cfg.phases} must name some of {list(PHASES)}")
    if cfg.start_state_step < 0:
        raise WorldsimError(f"train.start_state_step is {cfg.start_state_step}: it must be >= 0 (0: each episode's first frame)")
    accelerator = start_accelerator(cfg.mixed_precision, cfg.threads, cfg.seed)
    if not cfg.data.datasets:
        raise WorldsimError("train.data.datasets is empty: name the Minari datasets to train on")
    datasets = [load_dataset(dataset_id) for dataset_id in cfg.data.datasets]
    config = _model_config(model_values, datasets)
    if config.end_model is not None:
        # Ends are drawn end_weight times too often in training; inference undoes it (logit adjustment).
        config.end_model.end_log_prior = float(np.log(cfg.end_model.end_weight))
    world_model = WorldModel(config)
    if not world_model.recurrent:
        raise WorldsimError(
            "model.end_model is null: training needs the recurrent end model (model.heads is only for loading old checkpoints)"
        )
    phases = [phase for phase in PHASES if phase != "end_classifier" or config.end_classifier is not None]
    k, game = config.context_length, config.game
    if "denoiser" in phases and config.memory is not None:
        _check_memory_windows(cfg.denoiser, config)  # before any phase trains
    writer = tensorboard_writer(out) if accelerator.is_main_process else None
    data_ids = sorted(cfg.data.datasets)
    # Read once, shared by every phase's windows; with the labels the denoiser's window weights read.
    label_keys = tuple(dict.fromkeys([*game.label_keys, *(rule.label for rule in cfg.denoiser.label_weights)]))
    episodes = SequenceDataset(datasets, k + 1, label_keys, pad_start=k - 1)
    from_base = _phases_from_base(cfg, phases, world_model, out) if cfg.base_model else {}
    results = {}
    for phase in phases:
        if phase in from_base:
            continue
        settings: DenoiserPhase | EndModelPhase | EndClassifierPhase = getattr(cfg, phase)
        if phase == "end_classifier":
            if settings.generated_fraction > 0 and phase in cfg.phases and not _denoiser_ready(cfg, results, from_base):
                raise WorldsimError(
                    "train.end_classifier learns from the denoiser's frames, and no trained denoiser is here: "
                    "train it first, set train.base_model to a trained model, or set train.end_classifier.generated_fraction=0"
                )
            training_episodes = _episode_split(episodes, settings)[0]
            windows = SequenceDataset(
                episodes, k + 1, game.label_keys, pad_start=k - 1, episodes=training_episodes, hold_end=settings.hold_end
            )
            objective, length = EndClassifierObjective(world_model, settings.generated_fraction), windows.length
        else:
            length = k + (settings.unroll_steps if phase == "denoiser" else settings.scored_steps)
            if phase == "denoiser" and config.memory is not None:
                length = settings.memory_frames
            if length <= k:
                raise WorldsimError(f"train.{phase}: windows need at least one step after the K={k} context frames")
            windows = SequenceDataset(episodes, length, label_keys if phase == "denoiser" else game.label_keys, pad_start=k - 1)
            if phase == "denoiser":
                objective = DenoiserObjective(
                    world_model,
                    settings.memory_targets,
                    settings.context_blur_from_step,
                    settings.memory_return_targets,
                    settings.memory_view_match,
                )
            else:
                objective = EndModelObjective(world_model)
        evaluate = heldout_evaluator(world_model, cfg, out) if phase == "denoiser" and heldout_evaluator and cfg.data.heldout else None
        saved = {"model": phase_config(config, phase), "phase": phase, "datasets": data_ids, "window": length}
        label_weights = settings.label_weights if phase == "denoiser" else ()
        task = WindowTask(phase, objective, saved, windows, game, settings.balance_actions, settings.end_weight, evaluate, label_weights)
        steps = settings.steps if phase in cfg.phases else 0
        if phase not in cfg.phases and not (out / phase / "config.json").is_file():
            continue
        if phase not in cfg.phases and not task.accepts(_stored_config(out / phase)):
            # Not asked for, and of another architecture: nothing to export with; leave it alone.
            accelerator.print(f"{phase}: {out / phase} is of another config; model/ is written once it is retrained")
            continue
        phase_cfg = LoopConfig(**{key: getattr(settings, key) for key in LoopConfig.__dataclass_fields__}) if steps else LoopConfig(steps=0)
        results[phase] = train(task, phase_cfg, out / phase, accelerator, seed=cfg.seed, writer=writer, progress=progress)
    if writer is not None:
        writer.close()
    complete = all(
        phase in from_base or (phase in results and budget_spent(getattr(cfg, phase), results[phase].step, results[phase].cpu_seconds))
        for phase in phases
    )
    if not complete or not accelerator.is_main_process:
        return None
    world_model.to("cpu").eval()
    calibration = None
    if "end_classifier" in results:
        calibration = calibrate_end_classifier(world_model, episodes, cfg.end_classifier, cfg.seed)
    card = model_card(config, cfg, episodes, results, from_base, calibration, command, hardware_description(accelerator), out)
    save_checkpoint(
        out / MODEL_DIR,
        world_model,
        {"model": config.to_dict()},
        files={
            START_STATES_FILE: start_states(episodes, cfg.start_states, cfg.seed, game.progress_label, cfg.start_state_step).save_bytes(),
            "README.md": card,
            "training_config.json": json.dumps(to_dict(cfg), indent=2),
        },
    )
    return out / MODEL_DIR


# The parts of the model config each phase's weights depend on: a new denoiser architecture does
# not invalidate a trained end model, nor the other way round.
PHASE_KEYS = {
    "end_model": ("num_actions", "context_length", "image_size", "image_channels", "end_model", "game"),
    "end_classifier": ("num_actions", "context_length", "image_size", "image_channels", "end_classifier", "game"),
    "denoiser": ("num_actions", "context_length", "image_size", "image_channels", "unet", "memory", "edm", "sampler", "game"),
}


def phase_config(config: WorldModelConfig, phase: str) -> dict[str, Any]:
    values = config.to_dict()
    if values.get("end_classifier"):  # how its outputs are read (the bias is chosen after training) is not part of its weights' config
        values["end_classifier"] = {
            key: value for key, value in values["end_classifier"].items() if key not in EndClassifierConfig.READING_KEYS
        }
    return {key: values.get(key) for key in PHASE_KEYS[phase]}  # a part a model lacks is None


def _phases_from_base(cfg: WorldModelTraining, phases: list[str], world_model: WorldModel, out: Path) -> dict[str, str]:
    """Load ``cfg.base_model``'s weights for each phase that is neither asked for nor in the run
    folder; returns ``{phase: base model path}`` for those. A phase whose part of the base model's
    config differs from this model's is one error: its weights would not fit, or would mean another thing."""
    checkpoint = load_checkpoint(cfg.base_model)
    require_kind(checkpoint.config, WORLD_MODEL, checkpoint.path)
    base_config = WorldModelConfig.from_dict(checkpoint.config["model"])
    taken = {}
    for phase in phases:
        if phase in cfg.phases or (out / phase / "config.json").is_file():
            continue
        if phase_config(base_config, phase) != phase_config(world_model.config, phase):
            raise WorldsimError(
                f"train.base_model {cfg.base_model} has no {phase} of this model's config: train it here (add it to train.phases)"
            )
        prefix = f"{phase}."  # each phase's config part, module and weight names share its name
        getattr(world_model, phase).load_state_dict(
            {name.removeprefix(prefix): value for name, value in checkpoint.weights.items() if name.startswith(prefix)}
        )
        if phase == "end_classifier":
            world_model.config.end_classifier.decision_bias = list(base_config.end_classifier.decision_bias)
        taken[phase] = str(cfg.base_model)
    return taken


def _denoiser_ready(cfg: WorldModelTraining, results, from_base) -> bool:
    return "denoiser" in from_base or ("denoiser" in results and results["denoiser"].step >= cfg.denoiser.steps)


def _episode_split(episodes: SequenceDataset, settings: EndClassifierPhase) -> tuple[list[int], list[int]]:
    """The end classifier's (training, validation) episode indices: every ``validation_every``-th is held out."""
    indices = range(len(episodes.episodes))
    return [i for i in indices if i % settings.validation_every], [i for i in indices if not i % settings.validation_every]


@torch.no_grad()
def calibrate_end_classifier(
    world_model: WorldModel, episodes: SequenceDataset, settings: EndClassifierPhase, seed: int = 0, batch_size: int = 256
) -> dict[str, dict]:
    """Set the end classifier's decision bias on the held-out episodes (every
    ``validation_every``-th), each step's frame generated by the denoiser as in a dream (real with
    ``generated_fraction=0``): for each end class, the bias of the best F1 against running steps.
    A class seen fewer than ``min_validation_ends`` times there gets ``-log(end_weight)``, which
    only undoes the oversampling. Returns what was chosen, per class, for the model card."""
    classifier, game, k = world_model.end_classifier, world_model.config.game, world_model.context_length
    validation = SequenceDataset(episodes, k + 1, game.label_keys, pad_start=k - 1, episodes=_episode_split(episodes, settings)[1])
    generator = torch.Generator().manual_seed(seed)
    classifier.config.decision_bias = []  # raw logits
    margins, classes = [], []
    for first in range(0, len(validation), batch_size):
        batch = model_batch(stack_windows([validation[i] for i in range(first, min(first + batch_size, len(validation)))]), game)
        frames = batch["frames"]
        if settings.generated_fraction > 0:
            frames = with_generated_last_frames(world_model, frames, batch["actions"], len(frames), generator)
        logits = classifier.last_step(frames, batch["actions"][:, -1])
        margins.append(logits[:, 1:] - logits[:, :1])
        classes.append(batch["end_class"][:, -1])
    margins, classes = torch.cat(margins).numpy(), torch.cat(classes).numpy()
    prior, biases, chosen = -float(np.log(settings.end_weight)), [], {}
    for index, name in enumerate(game.end_classes[1:], start=1):
        is_end = classes == index
        if is_end.sum() >= settings.min_validation_ends:
            bias, f1, precision, recall = best_f1_bias(margins[:, index - 1], is_end)
        else:
            bias, f1, precision, recall = prior, float("nan"), float("nan"), float("nan")
        biases.append(bias)
        chosen[name] = {"bias": bias, "validation_ends": int(is_end.sum()), "f1": f1, "precision": precision, "recall": recall}
    classifier.config.decision_bias = biases
    return chosen


def _stored_config(folder: Path) -> dict[str, Any]:
    return {key: value for key, value in read_config(folder).items() if key not in ("format", "format_version", "checksums")}


def _check_memory_windows(settings: DenoiserPhase, config: WorldModelConfig) -> None:
    """The remembering denoiser's windows against its model: targets to draw, and a bank to recall from."""
    length, k = settings.memory_frames, config.context_length
    if not 1 <= settings.memory_targets <= length - k:
        raise WorldsimError(
            f"train.denoiser.memory_targets is {settings.memory_targets}: windows of {length} frames have "
            f"{length - k} frames after the K={k} context frames to denoise, so 1..{length - k}"
        )
    if not 0.0 <= settings.memory_return_targets <= 1.0:
        raise WorldsimError(
            f"train.denoiser.memory_return_targets is {settings.memory_return_targets}: a share of the denoised frames, so 0..1"
        )
    if settings.memory_view_match and not config.memory.view_bank:
        raise WorldsimError(
            "train.denoiser.memory_view_match trains the recall from a view bank, and model.memory.view_bank is 0: "
            "give the model a bank (configs/model/room-memory-views.yaml) or leave memory_view_match false"
        )
    if 0 < config.memory.view_bank < length - 1:
        raise WorldsimError(
            f"model.memory.view_bank is {config.memory.view_bank}: training recalls from up to {length - 1} frames "
            f"(train.denoiser.memory_frames {length}, less one), so the dream's bank keeps at least as many"
        )


def _model_config(values: dict[str, Any], datasets) -> WorldModelConfig:
    """The model config with the data's frame size and action count, checked against the datasets."""
    spaces = {(str(d.spec.observation_space), str(d.spec.action_space)) for d in datasets}
    if len(spaces) > 1:
        raise WorldsimError(f"datasets {[d.id for d in datasets]} have different observation or action spaces: train on one env's data")
    observation_space, action_space = datasets[0].spec.observation_space, datasets[0].spec.action_space
    if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim == 1:  # a joint action, one per agent
        num_actions = int(np.prod(action_space.nvec))
    elif isinstance(action_space, gym.spaces.Discrete):
        num_actions = int(action_space.n)
    else:
        num_actions = None
    if len(observation_space.shape) != 3 or num_actions is None:
        raise WorldsimError(
            f"dataset {datasets[0].id} has {observation_space} / {action_space}: the world model needs image observations "
            "and discrete actions (Discrete, or MultiDiscrete with one action per agent)"
        )
    height, width, channels = observation_space.shape
    if height != width or values.get("image_size", height) != height:
        raise WorldsimError(f"dataset frames are {height}x{width}; the model config says image_size {values.get('image_size')}")
    config = WorldModelConfig.from_dict({**values, "num_actions": num_actions, "image_size": height, "image_channels": channels})
    if isinstance(action_space, gym.spaces.MultiDiscrete) and tuple(int(n) for n in action_space.nvec) != config.game.action_counts:
        raise WorldsimError(
            f"the datasets' joint action space is {action_space}, model.game's agents have {list(config.game.action_counts)} actions: fix the game section"
        )
    env_spec = datasets[0].spec.env_spec
    if env_spec is not None and env_spec.id != config.game.real_env.get("id"):
        raise WorldsimError(
            f"the datasets come from {env_spec.id}, the model's game from {config.game.real_env.get('id')}: fix model.game.real_env"
        )
    return config


def start_states(windows: SequenceDataset, count: int, seed: int, progress_label: str | None, step: int = 0) -> StartStates:
    """Up to ``count`` training episodes, each as the K-frame context that ends at its ``step``-th
    frame (or its last, if shorter), padded as training windows are: frames before the first are
    the first frame repeated, with action 0. ``step`` 0 is what a real env's ``reset`` shows."""
    k = windows.pad_start + 1
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(windows.episodes), size=min(count, len(windows.episodes)), replace=False)
    episodes = [windows.episodes[i] for i in sorted(chosen)]
    frames, actions, progress = [], [], []
    for episode in episodes:
        last = min(step, len(episode.frames) - 1)
        steps = np.arange(last - k + 1, last + 1)
        frames.append(episode.frames[np.maximum(steps, 0)])
        actions.append(np.where(steps > 0, episode.actions[np.maximum(steps, 0)], 0))
        progress.append(float(episode.labels[progress_label][last]) if progress_label else 0.0)
    return StartStates(np.stack(frames), np.stack(actions).astype(np.int64), np.array(progress))


def model_card(
    config: WorldModelConfig,
    cfg: WorldModelTraining,
    windows: SequenceDataset,
    results,
    from_base,
    calibration,
    command,
    hardware,
    out: Path,
) -> str:
    """A first model card: data, steps, time, hardware, command, the end classifier's operating
    point, the last held-out fidelity."""
    frames = sum(len(ep.frames) for ep in windows.episodes)
    parameters = sum(p.numel() for p in WorldModel(config).parameters()) / 1e6
    shapes = {
        "denoiser": f"windows of {cfg.denoiser.memory_frames} frames read by the memory, {cfg.denoiser.memory_targets} of each denoised"
        + (
            f" ({cfg.denoiser.memory_return_targets:.0%} of them returns where the window has them)"
            if cfg.denoiser.memory_return_targets
            else ""
        )
        + ("; the recall also trained to pick the frame nearest each denoised one" if cfg.denoiser.memory_view_match else "")
        if config.memory
        else f"windows of {config.context_length} + {cfg.denoiser.unroll_steps} steps",
        "end_model": f"windows of {config.context_length} + {cfg.end_model.scored_steps} steps",
        "end_classifier": f"windows of {config.end_classifier.frames} frames, the last generated in {cfg.end_classifier.generated_fraction:.0%}, "
        + (f"up to {cfg.end_classifier.hold_end} frames past each end (the end frame held), " if cfg.end_classifier.hold_end else "")
        + f"every {cfg.end_classifier.validation_every}th episode held out (its frames generated)"
        if config.end_classifier
        else "",
    }
    lines = [
        f"# World model card: {config.game.name}",
        "",
        f"- Data: {', '.join(windows.dataset_ids)} ({len(windows.episodes)} episodes, {frames} frames).",
    ]
    for phase in [phase for phase in PHASES if phase in results or phase in from_base]:
        name = phase.replace("_", " ").capitalize()
        if phase in from_base:
            lines.append(f"- {name}: the weights of `{from_base[phase]}` (see its card).")
        else:
            lines.append(
                f"- {name}: {results[phase].step} steps of batch {getattr(cfg, phase).batch_size}, {shapes[phase]}, {results[phase].seconds / 3600:.2f} h."
            )
    for end_class, chosen in (calibration or {}).items():
        held_out = f"- End classifier, {end_class}: decision bias {chosen['bias']:+.2f}; {chosen['validation_ends']} held-out ends"
        if np.isnan(chosen["f1"]):
            lines.append(f"{held_out}, too few to choose it on: it only undoes the oversampling.")
        else:
            lines.append(f"{held_out}: F1 {chosen['f1']:.3f}, precision {chosen['precision']:.3f}, recall {chosen['recall']:.3f} there.")
    lines += [
        f"- Hardware: {hardware}.",
        f"- Command: `{command}`" if command else "- Command: (not recorded)",
        f"- Parameters: {parameters:.2f}M; sampler levels {[round(s, 4) for s in config.sampler.sigmas or []] or config.sampler.num_steps}.",
    ]
    curve = out / "curve.csv"
    if curve.is_file():
        lines += ["", "Held-out fidelity during training (`curve.csv`):", "", "```", curve.read_text().strip(), "```"]
    return "\n".join(lines) + "\n"


__all__ = ["WorldModelTraining", "train_world_model"]
