"""How faithful is a world model to the real game, and does it answer the actions? On held-out episodes.

Every figure stands beside the trivial predictor on the same frames, so that none can flatter:

* teacher-forced next-frame PSNR/SSIM: from a real context and the recorded action, the next frame;
  beside it **copying the last context frame**;
* changed-pixel PSNR: the same, pooled over the pixels where the real next frame differs from the
  last context frame (the static sky dominates whole-frame PSNR; Mario is 4x4 pixels of it);
* autoregressive PSNR per step: from a real context, the recorded actions for H steps, generated
  frames fed back; beside it the last real context frame held for H steps;
* controllability (Genie's delta-PSNR): PSNR under the recorded actions minus PSNR under random
  actions, from the same contexts with the same sampling noise; a model that ignores the action
  scores 0 exactly;
* scroll: how far the level moved over the rollouts' horizon, estimated from the frames in the same
  way for real and dreamed ones (``worldsim.eval.scroll``; checked against the RAM camera);
* the end model: death/flag precision and recall on real transitions, and false ends per 1000
  dreamed steps (an end predicted in an open-loop dream where the recording did not end);
  reward and progress errors.

PSNR is per frame (on ``[0, 1]`` frames, exact frames at the 8-bit quantisation floor), then averaged;
SSIM is torchmetrics'.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from tqdm import tqdm

from worldsim.core.frames import to_uint8
from worldsim.data.sequences import SequenceDataset
from worldsim.data.transitions import model_batch, stack_windows
from worldsim.eval.scroll import sequence_scroll
from worldsim.models.world_model import WorldModel

CHANGED_THRESHOLD = 0.03  # |difference| in [-1, 1] units (about 4 of 255 levels), any channel
REPORT_STEPS = (1, 2, 4, 8, 16, 32)


# The mean squared error of rounding to 8 bits (a uniform error of one level, 1/255): a frame that
# matches exactly scores this PSNR (58.9 dB) instead of infinity, which would swamp any average
# (copying the last frame is exact whenever nothing moved).
QUANTIZATION_MSE = 1.0 / (12 * 255**2)


def frame_psnr(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each frame: ``float[N, C, H, W]`` pairs in ``[-1, 1]`` -> ``float[N]``, on
    ``[0, 1]`` frames, the error floored at 8-bit quantisation (``QUANTIZATION_MSE``)."""
    mse = (((generated - real) / 2) ** 2).mean(dim=(1, 2, 3)).clamp_min(QUANTIZATION_MSE)
    return -10 * torch.log10(mse)


def frame_ssim(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame (Gaussian window 11, sigma 1.5): ``float[N, C, H, W]`` pairs -> ``float[N]``."""
    return structural_similarity_index_measure((generated + 1) / 2, (real + 1) / 2, data_range=1.0, reduction="none")


def changed_pixels(real: torch.Tensor, last_context: torch.Tensor) -> torch.Tensor:
    """``bool[N, 1, H, W]``: pixels where ``real`` differs from ``last_context`` (``float[N, C, H, W]``)."""
    return (real - last_context).abs().amax(dim=1, keepdim=True) > CHANGED_THRESHOLD


def changed_squared_error(generated: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    """Sum of squared errors (on ``[0, 1]`` frames) over the masked pixels, and their count (x channels)."""
    error = (((generated - real) / 2) ** 2 * mask).sum().item()
    return error, int(mask.sum().item()) * generated.shape[1]


def pooled_psnr(squared_error: float, count: int) -> float:
    return float("nan") if count == 0 else float(10 * np.log10(1.0 / max(squared_error / count, 1e-12)))


@torch.no_grad()
def rollout(model: WorldModel, frames: torch.Tensor, actions: torch.Tensor, horizon: int, generator=None, observed: int | None = None):
    """Open-loop dream under given actions.

    ``frames float[B, S + horizon, C, H, W]`` (only the first S are given to the model) and
    ``actions int64[B, S + horizon]`` (``actions[:, i]`` produced ``frames[:, i]``), where S is
    ``observed`` (at least K; K by default): the dream starts from S real frames, which a memory
    reads all of and a frame stack only the last K of. Returns the generated frames ``float[B,
    horizon, C, H, W]`` and the end model's outputs per step (each ``[B, horizon, ...]``).
    """
    k = model.context_length
    observed = k if observed is None else observed
    if observed < k:
        raise ValueError(f"observed={observed}: a dream starts from at least the model's K={k} frames")
    context = frames[:, observed - k : observed]
    state = model.start(frames[:, :observed], actions[:, :observed])
    generated, outputs = [], []
    for h in range(horizon):
        t = observed + h
        next_frame, out, state = model.predict_step(context, actions[:, t - k + 1 : t + 1], state, generator=generator)
        generated.append(next_frame)
        outputs.append(out)
        context = torch.cat([context[:, 1:], next_frame[:, None]], dim=1)
    stacked = {key: torch.stack([out[key] for out in outputs], dim=1) for key in outputs[0]}
    return torch.stack(generated, dim=1), stacked


@dataclass
class FidelityReport:
    """Averages over the evaluated windows; per-step lists index step ``h`` at ``h - 1``."""

    transitions: int = 0
    teacher_forced_psnr: float = float("nan")
    copy_psnr: float = float("nan")  # the last context frame as the prediction, same transitions
    changed_psnr: float = float("nan")  # pooled over the pixels that change
    copy_changed_psnr: float = float("nan")
    teacher_forced_ssim: float = float("nan")
    copy_ssim: float = float("nan")
    rollouts: int = 0
    autoregressive_psnr: list[float] = field(default_factory=list)
    copy_autoregressive_psnr: list[float] = field(default_factory=list)
    changed_autoregressive_psnr: list[float] = field(default_factory=list)
    copy_changed_autoregressive_psnr: list[float] = field(default_factory=list)
    random_action_psnr: list[float] = field(default_factory=list)  # same contexts and noise, random actions
    delta_psnr: list[float] = field(default_factory=list)  # true minus random actions
    # Each rollout's PSNR per step, float[rollouts][horizon]: the windows and the sampling noise
    # depend only on the seed, so two models evaluated with one seed can be compared rollout by
    # rollout (benchmarks/fidelity_table.py --paired), a far tighter test than two means.
    rollout_psnr: list[list[float]] = field(default_factory=list)
    agent_delta_psnr: dict[str, list[float]] = field(default_factory=dict)  # per agent: only its actions random
    deaths: int = 0
    death_precision: float = float("nan")
    death_recall: float = float("nan")
    flags: int = 0
    flag_precision: float = float("nan")
    flag_recall: float = float("nan")
    dreamed_steps: int = 0
    false_ends_per_1000_dreamed_steps: float = float("nan")
    real_scroll: float = float("nan")  # mean camera move over the rollouts' horizon (64-px frame pixels)
    dream_scroll: float = float("nan")  # the same, estimated from the dreamed frames
    scroll_error: float = float("nan")  # mean |dream - real| over the rollouts
    reward_mae: float = float("nan")
    reward_sign_accuracy: float = float("nan")
    progress_mae: float = float("nan")
    # The game's end classes after "running" (the death/flag fields hold the first two) and its
    # progress label: the table shows only the rows the game has.
    end_classes: list[str] = field(default_factory=lambda: ["death", "flag"])
    progress_label: str | None = "x_pos"

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A Markdown table: every PSNR beside copying the last frame, controllability, ends."""

        def at(values: list[float], h: int) -> str:
            return f"{values[h - 1]:.2f}" if h <= len(values) else "-"

        rows = [
            (
                "next-frame PSNR, teacher-forced",
                f"{self.teacher_forced_psnr:.2f} dB",
                f"{self.copy_psnr:.2f} dB",
                f"{self.transitions} transitions",
            ),
            ("changed-pixel PSNR, teacher-forced", f"{self.changed_psnr:.2f} dB", f"{self.copy_changed_psnr:.2f} dB", "pixels that change"),
            ("SSIM, teacher-forced", f"{self.teacher_forced_ssim:.3f}", f"{self.copy_ssim:.3f}", ""),
        ]
        steps = [h for h in REPORT_STEPS if h <= len(self.autoregressive_psnr)]
        rows += [
            (
                f"autoregressive PSNR, step {h}",
                f"{at(self.autoregressive_psnr, h)} dB",
                f"{at(self.copy_autoregressive_psnr, h)} dB",
                (
                    f"changed pixels {at(self.changed_autoregressive_psnr, h)} (copy {at(self.copy_changed_autoregressive_psnr, h)}); "
                    f"random actions {at(self.random_action_psnr, h)}, delta-PSNR {at(self.delta_psnr, h)} dB"
                ),
            )
            for h in steps
        ]
        rows += [
            (f"delta-PSNR, only {agent}'s actions random, step {h}", f"{at(values, h)} dB", "0 (copying ignores actions)", "")
            for agent, values in self.agent_delta_psnr.items()
            for h in steps
        ]
        ends = [(self.death_precision, self.death_recall, self.deaths), (self.flag_precision, self.flag_recall, self.flags)]
        rows += [
            (f"{name} precision / recall", f"{precision:.3f} / {recall:.3f}", "", f"{count} {name} steps")
            for name, (precision, recall, count) in zip(self.end_classes, ends, strict=False)
        ]
        if self.end_classes:
            rows.append(
                (
                    "false ends per 1000 dreamed steps",
                    f"{self.false_ends_per_1000_dreamed_steps:.1f}",
                    "",
                    f"{self.dreamed_steps} dreamed steps",
                )
            )
        rows += [
            (
                f"scroll over {len(self.autoregressive_psnr)} steps (pixels)",
                f"{self.dream_scroll:.1f}",
                "0 (a still frame)",
                f"real {self.real_scroll:.1f}; mean error {self.scroll_error:.1f}",
            ),
            ("reward MAE / sign accuracy", f"{self.reward_mae:.2f} / {self.reward_sign_accuracy:.3f}", "", ""),
        ]
        if self.progress_label:
            rows.append((f"progress ({self.progress_label}) MAE", f"{self.progress_mae:.2f}", "", ""))
        lines = ["| metric | model | copy last frame | notes |", "|---|---|---|---|"]
        return "\n".join(lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows])


@torch.no_grad()
def teacher_forced(model: WorldModel, batches, generator=None) -> dict[str, np.ndarray]:
    """Per-transition results over ``batches`` of windows of K+1 steps (``model_batch`` dicts)."""
    out: dict[str, list] = {
        key: []
        for key in (
            "psnr",
            "copy_psnr",
            "ssim",
            "copy_ssim",
            "end_true",
            "end_pred",
            "reward_true",
            "reward_pred",
            "progress_true",
            "progress_pred",
        )
    }
    changed = np.zeros(4)  # model error, count, copy error, count
    for batch in batches:
        generated, outputs = rollout(model, batch["frames"], batch["actions"], 1, generator)
        real, last = batch["frames"][:, -1], batch["frames"][:, -2]
        out["psnr"].append(frame_psnr(generated[:, 0], real))
        out["copy_psnr"].append(frame_psnr(last, real))
        out["ssim"].append(frame_ssim(generated[:, 0], real))
        out["copy_ssim"].append(frame_ssim(last, real))
        mask = changed_pixels(real, last)
        changed += [*changed_squared_error(generated[:, 0], real, mask), *changed_squared_error(last, real, mask)]
        out["end_true"].append(batch["end_class"][:, -1])
        out["end_pred"].append(outputs["end"][:, 0].argmax(-1))
        out["reward_true"].append(batch["rewards"][:, -1])
        out["reward_pred"].append(outputs["reward"][:, 0])
        out["progress_true"].append(batch["progress"][:, -1])
        out["progress_pred"].append(outputs["progress"][:, 0])
    result = {key: torch.cat(values).cpu().numpy() for key, values in out.items()}
    result["changed"] = changed
    return result


@torch.no_grad()
def autoregressive(
    model: WorldModel,
    batches,
    horizon: int,
    seed: int = 0,
    num_actions: int | None = None,
    agents: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, np.ndarray]:
    """Per-step results of open-loop rollouts over ``batches`` of windows of K + horizon steps:
    under the recorded actions, and (``num_actions`` given) under random actions from the same
    contexts with the same sampling noise. Also counts dreamed ends where the recording ran on (not
    while an end classifier is uncalibrated: then ``dreamed_steps`` is 0).

    ``agents`` (a game of several agents: ``{"agents": names, "counts": actions per agent}``) adds,
    for each agent, rollouts where only that agent's actions are random (``random_psnr_<agent>``):
    each player's control must show on its own."""
    k = None
    psnr, copy, random_psnr = [], [], []
    agent_random_psnr: dict[str, list[torch.Tensor]] = {}
    changed = np.zeros((horizon, 4))
    false_ends, dreamed = 0, 0
    # An end classifier decides only once calibrated (its decision bias is set after every phase of
    # training): raw logits of one trained with ends oversampled would count hundreds of false ends.
    classifier = getattr(model, "end_classifier", None)
    ends_decided = classifier is None or classifier.calibrated
    real_scroll, dream_scroll = [], []
    for index, batch in enumerate(batches):
        frames, actions = batch["frames"], batch["actions"]
        k = frames.shape[1] - horizon
        device = frames.device
        generated, outputs = rollout(model, frames, actions, horizon, torch.Generator(device).manual_seed(seed + index))
        real = frames[:, k:]
        last = frames[:, k - 1]
        psnr.append(frame_psnr(generated.flatten(0, 1), real.flatten(0, 1)).reshape(len(real), horizon))
        copy.append(frame_psnr(last[:, None].expand_as(real).flatten(0, 1), real.flatten(0, 1)).reshape(len(real), horizon))
        for h in range(horizon):
            mask = changed_pixels(real[:, h], last)
            changed[h] += [*changed_squared_error(generated[:, h], real[:, h], mask), *changed_squared_error(last, real[:, h], mask)]
        for real_frames, dream_frames, last_frame in zip(
            to_uint8(real).cpu().numpy(), to_uint8(generated).cpu().numpy(), to_uint8(last).cpu().numpy(), strict=True
        ):
            real_scroll.append(sequence_scroll(np.concatenate([last_frame[None], real_frames]))[-1])
            dream_scroll.append(sequence_scroll(np.concatenate([last_frame[None], dream_frames]))[-1])
        if ends_decided:
            predicted_end = outputs["end"].argmax(-1) != 0
            false_ends += int((predicted_end & (batch["end_class"][:, k:] == 0)).sum())
            dreamed += predicted_end.numel()
        if num_actions:
            random_actions = actions.clone()
            action_generator = torch.Generator().manual_seed(10_000 + seed + index)
            random_actions[:, k:] = torch.randint(num_actions, random_actions[:, k:].shape, generator=action_generator).to(device)
            other, _ = rollout(model, frames, random_actions, horizon, torch.Generator(device).manual_seed(seed + index))
            random_psnr.append(frame_psnr(other.flatten(0, 1), real.flatten(0, 1)).reshape(len(real), horizon))
        for which, name in enumerate((agents or {}).get("agents", ())):
            counts = agents["counts"]
            per_agent = np.stack(np.unravel_index(actions[:, k:].cpu().numpy(), counts), axis=-1)
            per_agent[..., which] = np.random.default_rng([20_000 + seed + index, which]).integers(counts[which], size=per_agent.shape[:-1])
            replaced = actions.clone()
            replaced[:, k:] = torch.from_numpy(np.ravel_multi_index(tuple(np.moveaxis(per_agent, -1, 0)), counts)).to(device)
            other, _ = rollout(model, frames, replaced, horizon, torch.Generator(device).manual_seed(seed + index))
            agent_random_psnr.setdefault(name, []).append(frame_psnr(other.flatten(0, 1), real.flatten(0, 1)).reshape(len(real), horizon))
    result = {
        "psnr": torch.cat(psnr).cpu().numpy(),
        "copy_psnr": torch.cat(copy).cpu().numpy(),
        "changed": changed,
        "false_ends": np.array(false_ends),
        "dreamed_steps": np.array(dreamed),
        "real_scroll": np.array(real_scroll),
        "dream_scroll": np.array(dream_scroll),
    }
    if random_psnr:
        result["random_psnr"] = torch.cat(random_psnr).cpu().numpy()
    for name, values in agent_random_psnr.items():
        result[f"random_psnr_{name}"] = torch.cat(values).cpu().numpy()
    return result


def end_precision_recall(end_true: np.ndarray, end_pred: np.ndarray, cls: int) -> tuple[float, float, int]:
    """Precision and recall of calling end class ``cls`` at the exact step, and how many steps
    truly were ``cls``; NaN where nothing was called (precision) or nothing happened (recall)."""
    true, pred = end_true == cls, end_pred == cls
    hits = int((true & pred).sum())
    precision = hits / pred.sum() if pred.sum() else float("nan")
    recall = hits / true.sum() if true.sum() else float("nan")
    return float(precision), float(recall), int(true.sum())


def summarize(teacher: dict[str, np.ndarray], rollouts: dict[str, np.ndarray] | None = None, game=None) -> FidelityReport:
    """The report's averages and the end model's precision/recall from per-transition results;
    ``game`` (a ``GameDescription``) names the end classes and the progress label (Mario's if None)."""
    death_precision, death_recall, deaths = end_precision_recall(teacher["end_true"], teacher["end_pred"], 1)
    flag_precision, flag_recall, flags = end_precision_recall(teacher["end_true"], teacher["end_pred"], 2)
    reward_true, reward_pred = teacher["reward_true"], teacher["reward_pred"]
    sign = lambda r: np.where(r > 0.5, 1, np.where(r < -0.5, -1, 0))
    error, count, copy_error, copy_count = teacher["changed"]
    report = FidelityReport(
        transitions=len(teacher["psnr"]),
        teacher_forced_psnr=float(teacher["psnr"].mean()),
        copy_psnr=float(teacher["copy_psnr"].mean()),
        changed_psnr=pooled_psnr(error, int(count)),
        copy_changed_psnr=pooled_psnr(copy_error, int(copy_count)),
        teacher_forced_ssim=float(teacher["ssim"].mean()),
        copy_ssim=float(teacher["copy_ssim"].mean()),
        deaths=deaths,
        death_precision=death_precision,
        death_recall=death_recall,
        flags=flags,
        flag_precision=flag_precision,
        flag_recall=flag_recall,
        reward_mae=float(np.abs(reward_true - reward_pred).mean()),
        reward_sign_accuracy=float((sign(reward_true) == sign(reward_pred)).mean()),
        progress_mae=float(np.abs(teacher["progress_true"] - teacher["progress_pred"]).mean()),
    )
    if game is not None:
        report.end_classes, report.progress_label = list(game.end_classes[1:]), game.progress_label
    if rollouts is not None:
        report.rollouts = len(rollouts["psnr"])
        report.autoregressive_psnr = [float(v) for v in rollouts["psnr"].mean(axis=0)]
        report.rollout_psnr = [[round(float(v), 4) for v in row] for row in rollouts["psnr"]]
        report.copy_autoregressive_psnr = [float(v) for v in rollouts["copy_psnr"].mean(axis=0)]
        report.changed_autoregressive_psnr = [pooled_psnr(e, int(c)) for e, c, _, _ in rollouts["changed"]]
        report.copy_changed_autoregressive_psnr = [pooled_psnr(e, int(c)) for _, _, e, c in rollouts["changed"]]
        if "random_psnr" in rollouts:
            report.random_action_psnr = [float(v) for v in rollouts["random_psnr"].mean(axis=0)]
            report.delta_psnr = [float(v) for v in (rollouts["psnr"] - rollouts["random_psnr"]).mean(axis=0)]
        for key in rollouts:
            if key.startswith("random_psnr_"):
                report.agent_delta_psnr[key.removeprefix("random_psnr_")] = [
                    float(v) for v in (rollouts["psnr"] - rollouts[key]).mean(axis=0)
                ]
        report.dreamed_steps = dreamed = int(rollouts["dreamed_steps"])
        report.false_ends_per_1000_dreamed_steps = 1000 * float(rollouts["false_ends"]) / dreamed if dreamed else float("nan")
        report.real_scroll = float(rollouts["real_scroll"].mean())
        report.dream_scroll = float(rollouts["dream_scroll"].mean())
        report.scroll_error = float(np.abs(rollouts["dream_scroll"] - rollouts["real_scroll"]).mean())
    return report


def window_batches(windows: SequenceDataset, indices: np.ndarray, game, batch_size: int, device, desc: str = "", progress: bool = False):
    """``model_batch`` dicts of the windows at ``indices``, ``batch_size`` at a time."""
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not progress, unit="batch"):
        items = [windows[int(i)] for i in indices[start : start + batch_size]]
        yield model_batch(stack_windows(items), game, device)


def evaluate_model(
    model: WorldModel,
    windows_source,
    *,
    horizon: int = 32,
    rollouts: int = 256,
    transitions: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> FidelityReport:
    """The whole evaluation of a loaded model on held-out episodes (a Minari dataset or a
    ``SequenceDataset`` already in memory). Teacher-forced metrics use every transition (or
    ``transitions`` drawn at random, always keeping every episode end); rollouts use ``rollouts``
    windows of ``horizon`` steps drawn at random from inside episodes."""
    from worldsim.errors import WorldsimError

    if horizon < 1 or rollouts < 0 or batch_size < 1:
        raise WorldsimError(f"--horizon and --batch-size must be >= 1 and --rollouts >= 0, got {horizon}, {batch_size}, {rollouts}")
    device = next(model.parameters()).device
    k, game = model.context_length, model.config.game
    rng = np.random.default_rng(seed)
    teacher_windows = SequenceDataset(windows_source, k + 1, game.label_keys, pad_start=k - 1)
    indices = np.arange(len(teacher_windows))
    if transitions is not None and transitions < len(indices):
        ends = np.flatnonzero(teacher_windows.target_ends())
        others = rng.choice(np.setdiff1d(indices, ends), size=max(transitions - len(ends), 0), replace=False)
        indices = np.sort(np.concatenate([ends, others]))
    teacher = teacher_forced(
        model,
        window_batches(teacher_windows, indices, game, batch_size, device, "teacher-forced", progress),
        torch.Generator(device).manual_seed(seed),
    )
    curves = None
    if rollouts:
        rollout_windows = SequenceDataset(teacher_windows, k + horizon, game.label_keys, pad_start=k - 1)
        chosen = np.sort(rng.choice(len(rollout_windows), size=min(rollouts, len(rollout_windows)), replace=False))
        batches = window_batches(rollout_windows, chosen, game, batch_size, device, "autoregressive", progress)
        curves = autoregressive(model, batches, horizon, seed=seed, num_actions=model.config.num_actions, agents=agent_spaces(game))
    return summarize(teacher, curves, game)


def agent_spaces(game) -> dict[str, tuple] | None:
    """``autoregressive``'s ``agents`` for a game of several agents, None for one player."""
    return {"agents": tuple(game.agents), "counts": game.action_counts} if game.agents else None


def evaluate_fidelity(
    checkpoint: str | os.PathLike,
    dataset_id: str,
    *,
    horizon: int = 32,
    rollouts: int = 256,
    transitions: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    sampling_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> FidelityReport:
    """``worldsim eval``: ``evaluate_model`` on a checkpoint and a held-out Minari dataset."""
    from worldsim.data.minari_io import load_dataset
    from worldsim.engine import load_engine_model

    model, _, _ = load_engine_model(checkpoint, device, sampling_steps)
    return evaluate_model(
        model,
        load_dataset(dataset_id),
        horizon=horizon,
        rollouts=rollouts,
        transitions=transitions,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )


CURVE_FILE = "curve.csv"
CURVE_FIELDS = (
    "step", "hours", "loss", "teacher_forced_psnr", "copy_psnr", "changed_psnr", "copy_changed_psnr",
    "autoregressive_psnr_8", "copy_autoregressive_psnr_8", "delta_psnr_8", "false_ends_per_1000", "real_scroll_8", "dream_scroll_8",
)  # fmt: skip


class HeldoutCurve:
    """The denoiser phase's evaluation: fixed held-out windows, a row of ``curve.csv`` per call
    (every PSNR beside copying the last frame) and tensorboard scalars."""

    def __init__(self, model: WorldModel, dataset_id: str, out: Path, windows: int = 128, rollouts: int = 32, horizon: int = 8):
        from worldsim.data.minari_io import load_dataset

        k, self.model, self.out, self.horizon = model.context_length, model, Path(out), horizon
        episodes = SequenceDataset(load_dataset(dataset_id), k + 1, model.config.game.label_keys, pad_start=k - 1)
        rng = np.random.default_rng(12345)
        self.teacher = (episodes, np.sort(rng.choice(len(episodes), size=min(windows, len(episodes)), replace=False)))
        long = SequenceDataset(episodes, k + horizon, model.config.game.label_keys)
        self.rollout = (long, np.sort(rng.choice(len(long), size=min(rollouts, len(long)), replace=False)))

    def __call__(self, objective, step: int, hours: float, loss: float, writer) -> None:
        model, game = self.model, self.model.config.game
        device = next(objective.parameters()).device
        model.to(device).eval()
        end_model = self.out / "end_model"
        if end_model.is_dir():  # trained by the other phase, maybe in another process: read it as it is now
            from worldsim.core.checkpoint import load_checkpoint

            weights = load_checkpoint(end_model, map_location=device).weights  # the end-model phase's, named "end_model.*"
            model.end_model.load_state_dict({name.removeprefix("end_model."): value for name, value in weights.items()})
        teacher = teacher_forced(model, window_batches(*self.teacher, game, 64, device), torch.Generator(device).manual_seed(0))
        curves = autoregressive(
            model,
            window_batches(*self.rollout, game, 64, device),
            self.horizon,
            num_actions=model.config.num_actions,
            agents=agent_spaces(game),
        )
        report = summarize(teacher, curves, game)
        h = self.horizon
        row = {
            "step": step,
            "hours": round(hours, 4),
            "loss": round(loss, 5),
            "teacher_forced_psnr": round(report.teacher_forced_psnr, 3),
            "copy_psnr": round(report.copy_psnr, 3),
            "changed_psnr": round(report.changed_psnr, 3),
            "copy_changed_psnr": round(report.copy_changed_psnr, 3),
            f"autoregressive_psnr_{h}": round(report.autoregressive_psnr[-1], 3),
            f"copy_autoregressive_psnr_{h}": round(report.copy_autoregressive_psnr[-1], 3),
            f"delta_psnr_{h}": round(report.delta_psnr[-1], 3),
            "false_ends_per_1000": round(report.false_ends_per_1000_dreamed_steps, 2),
            f"real_scroll_{h}": round(report.real_scroll, 2),
            f"dream_scroll_{h}": round(report.dream_scroll, 2),
        }
        row |= {f"delta_psnr_{h}_{agent}": round(values[-1], 3) for agent, values in report.agent_delta_psnr.items()}
        file = self.out / CURVE_FILE
        previous = list(csv.DictReader(file.open())) if file.is_file() else []
        rows = [r for r in previous if int(r["step"]) < step] + [row]  # a resumed run rewrites its future
        tmp = file.with_name(f".{file.name}.tmp")
        with tmp.open("w", newline="") as handle:
            table = csv.DictWriter(handle, list(row))
            table.writeheader()
            table.writerows({key: r.get(key, "") for key in row} for r in rows)
        tmp.replace(file)
        if writer is not None:
            for key, value in row.items():
                if key not in ("step", "hours"):
                    writer.add_scalar(f"heldout/{key}", value, step)


def heldout_curve(model: WorldModel, cfg, out: Path) -> HeldoutCurve:
    """What ``worldsim train`` passes to the trainer as the denoiser phase's evaluation."""
    return HeldoutCurve(model, cfg.data.heldout, out)


def write_json(report: FidelityReport, path: str | os.PathLike) -> None:
    """Write the report as strict JSON (NaN as null), atomically."""
    path = Path(path)
    values = finite(report.to_dict())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(values, indent=2, allow_nan=False))
    tmp.replace(path)


def finite(value):
    """``value`` with every non-finite float (in nested dicts and lists) replaced by None: strict JSON."""
    if isinstance(value, dict):
        return {key: finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["FidelityReport", "HeldoutCurve", "evaluate_fidelity", "evaluate_model", "frame_psnr", "frame_ssim", "rollout", "summarize"]
