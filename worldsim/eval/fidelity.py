"""How faithful is a world model to the real game? Measured on held-out real episodes.

* teacher-forced next-frame PSNR/SSIM: from a real context and the recorded action, generate the
  next frame and compare it with the real one (each step starts again from real frames);
* autoregressive PSNR per step: from a real context, follow the recorded actions for H steps,
  feeding generated frames back; step ``h`` compares the ``h``-th generated frame with the real one
  (it falls as the dream drifts from the recording, and as the two diverge on chance events);
* transition heads: the reward and the end of each step read from the generated next frame (as the
  dream env reads them), against the dataset's labels: death precision and recall, reward error.

PSNR and SSIM are torchmetrics' (on ``[0, 1]`` frames, per frame, then averaged).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from tqdm import tqdm

from worldsim.models.heads import DEATH, FLAG
from worldsim.models.world_model import WorldModel


def frame_psnr(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each frame: ``float[N, C, H, W]`` pairs in ``[-1, 1]`` -> ``float[N]``."""
    return peak_signal_noise_ratio(
        (generated + 1) / 2,
        (real + 1) / 2,
        data_range=1.0,
        reduction="none",
        dim=(1, 2, 3),
    )


def frame_ssim(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame (Gaussian window 11, sigma 1.5): ``float[N, C, H, W]`` pairs -> ``float[N]``."""
    return structural_similarity_index_measure((generated + 1) / 2, (real + 1) / 2, data_range=1.0, reduction="none")


@torch.no_grad()
def rollout(
    model: WorldModel,
    frames: torch.Tensor,
    actions: torch.Tensor,
    horizon: int,
    generator=None,
):
    """Open-loop dream under recorded actions.

    ``frames float[B, K + horizon, C, H, W]`` (only the first K are given to the model) and
    ``actions int64[B, K + horizon]`` (``actions[:, i]`` produced ``frames[:, i]``). Returns the
    generated frames ``float[B, horizon, C, H, W]`` and the heads' outputs per step (each
    ``[B, horizon, ...]``).
    """
    k = model.context_length
    context = frames[:, :k]
    state = model.start(context, actions[:, :k])
    generated, heads = [], []
    for h in range(horizon):
        t = k + h
        next_frame, out, state = model.predict_step(context, actions[:, t - k + 1 : t + 1], state, generator=generator)
        generated.append(next_frame)
        heads.append(out)
        context = torch.cat([context[:, 1:], next_frame[:, None]], dim=1)
    stacked = {key: torch.stack([out[key] for out in heads], dim=1) for key in heads[0]}
    return torch.stack(generated, dim=1), stacked


@dataclass
class FidelityReport:
    """Averages over the evaluated windows; ``autoregressive_psnr[h]`` is step ``h + 1``."""

    transitions: int
    teacher_forced_psnr: float
    teacher_forced_ssim: float
    rollouts: int = 0
    autoregressive_psnr: list[float] = field(default_factory=list)
    death_precision: float = float("nan")
    death_recall: float = float("nan")
    deaths: int = 0
    flag_recall: float = float("nan")
    flags: int = 0
    reward_mae: float = float("nan")
    reward_sign_accuracy: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A Markdown table of the report (autoregressive PSNR at steps 1, 2, 4, 8, 16, 32)."""
        rows = [
            (
                "teacher-forced next-frame PSNR",
                f"{self.teacher_forced_psnr:.2f} dB ({self.transitions} transitions)",
            ),
            ("teacher-forced next-frame SSIM", f"{self.teacher_forced_ssim:.3f}"),
        ]
        rows += [
            (
                f"autoregressive PSNR, step {h}",
                f"{self.autoregressive_psnr[h - 1]:.2f} dB ({self.rollouts} rollouts)",
            )
            for h in (1, 2, 4, 8, 16, 32)
            if h <= len(self.autoregressive_psnr)
        ]
        rows += [
            (
                "death precision / recall",
                f"{self.death_precision:.3f} / {self.death_recall:.3f} ({self.deaths} deaths)",
            ),
            ("flag recall", f"{self.flag_recall:.3f} ({self.flags} flags)"),
            (
                "reward MAE / sign accuracy",
                f"{self.reward_mae:.2f} / {self.reward_sign_accuracy:.3f}",
            ),
        ]
        return "\n".join(
            [
                "| metric | value |",
                "|---|---|",
                *(f"| {name} | {value} |" for name, value in rows),
            ]
        )


@torch.no_grad()
def teacher_forced(model: WorldModel, batches, generator=None) -> dict[str, np.ndarray]:
    """Per-transition PSNR, SSIM, predicted/true end class and reward over ``batches`` of windows
    (dicts with ``frames float[B, K+1, C, H, W]``, ``actions``, ``rewards``, ``end_class``)."""
    out: dict[str, list] = {
        "psnr": [],
        "ssim": [],
        "end_true": [],
        "end_pred": [],
        "reward_true": [],
        "reward_pred": [],
    }
    for batch in batches:
        generated, heads = rollout(model, batch["frames"], batch["actions"], 1, generator)
        real = batch["frames"][:, -1]
        out["psnr"].append(frame_psnr(generated[:, 0], real))
        out["ssim"].append(frame_ssim(generated[:, 0], real))
        out["end_true"].append(batch["end_class"][:, -1])
        out["end_pred"].append(heads["end"][:, 0].argmax(-1))
        out["reward_true"].append(batch["rewards"][:, -1])
        out["reward_pred"].append(heads["reward"][:, 0])
    return {key: torch.cat(values).cpu().numpy() for key, values in out.items()}


@torch.no_grad()
def autoregressive(model: WorldModel, batches, horizon: int, generator=None) -> np.ndarray:
    """PSNR ``float[N, horizon]`` of open-loop rollouts over ``batches`` of windows of K + horizon frames."""
    curves = []
    for batch in batches:
        generated, _ = rollout(model, batch["frames"], batch["actions"], horizon, generator)
        real = batch["frames"][:, -horizon:]
        curves.append(frame_psnr(generated.flatten(0, 1), real.flatten(0, 1)).reshape(len(real), horizon))
    return torch.cat(curves).cpu().numpy()


def summarize(teacher: dict[str, np.ndarray], curves: np.ndarray | None = None) -> FidelityReport:
    """The report's averages and the heads' precision/recall from per-transition results."""

    def precision_recall(cls: int) -> tuple[float, float, int]:
        true, pred = teacher["end_true"] == cls, teacher["end_pred"] == cls
        hits = int((true & pred).sum())
        precision = hits / pred.sum() if pred.sum() else float("nan")
        recall = hits / true.sum() if true.sum() else float("nan")
        return float(precision), float(recall), int(true.sum())

    death_precision, death_recall, deaths = precision_recall(DEATH)
    _, flag_recall, flags = precision_recall(FLAG)
    reward_true, reward_pred = teacher["reward_true"], teacher["reward_pred"]
    # Reward sign as DIAMOND scores it; |r| < 0.5 counts as zero (the env's rewards are integers).
    sign = lambda r: np.where(r > 0.5, 1, np.where(r < -0.5, -1, 0))
    return FidelityReport(
        transitions=len(teacher["psnr"]),
        teacher_forced_psnr=float(teacher["psnr"].mean()),
        teacher_forced_ssim=float(teacher["ssim"].mean()),
        rollouts=0 if curves is None else len(curves),
        autoregressive_psnr=[] if curves is None else [float(v) for v in curves.mean(axis=0)],
        death_precision=death_precision,
        death_recall=death_recall,
        deaths=deaths,
        flag_recall=flag_recall,
        flags=flags,
        reward_mae=float(np.abs(reward_true - reward_pred).mean()),
        reward_sign_accuracy=float((sign(reward_true) == sign(reward_pred)).mean()),
    )


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
    """The whole evaluation of a checkpoint on a held-out Minari dataset (``worldsim eval``).

    Teacher-forced metrics and the heads use every transition (or ``transitions`` drawn at random,
    always keeping every episode end: deaths are rare); autoregressive PSNR uses ``rollouts``
    windows of ``horizon`` steps drawn at random from inside episodes.
    """
    from worldsim.data.minari_io import load_dataset
    from worldsim.data.sequences import SequenceDataset
    from worldsim.data.transitions import LABEL_KEYS, model_batch
    from worldsim.engine import load_engine_model
    from worldsim.errors import WorldsimError

    if horizon < 1 or rollouts < 0 or batch_size < 1:
        raise WorldsimError(f"--horizon and --batch-size must be >= 1 and --rollouts >= 0, got {horizon}, {batch_size}, {rollouts}")
    model, _, device = load_engine_model(checkpoint, device, sampling_steps)
    dataset = load_dataset(dataset_id)
    k = model.context_length
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device).manual_seed(seed)

    def batches(windows: SequenceDataset, indices: np.ndarray, desc: str):
        for start in tqdm(
            range(0, len(indices), batch_size),
            desc=desc,
            disable=not progress,
            unit="batch",
        ):
            items = [windows[int(i)] for i in indices[start : start + batch_size]]
            yield model_batch(
                {key: torch.stack([item[key] for item in items]) for key in items[0]},
                device,
            )

    teacher_windows = SequenceDataset(dataset, k + 1, LABEL_KEYS, pad_start=k - 1)
    indices = np.arange(len(teacher_windows))
    if transitions is not None and transitions < len(indices):
        ends = np.flatnonzero(teacher_windows.target_ends())
        others = rng.choice(
            np.setdiff1d(indices, ends),
            size=max(transitions - len(ends), 0),
            replace=False,
        )
        indices = np.sort(np.concatenate([ends, others]))
    teacher = teacher_forced(model, batches(teacher_windows, indices, "teacher-forced"), generator)
    curves = None
    if rollouts:
        rollout_windows = SequenceDataset(dataset, k + horizon, LABEL_KEYS, pad_start=k - 1)
        chosen = np.sort(
            rng.choice(
                len(rollout_windows),
                size=min(rollouts, len(rollout_windows)),
                replace=False,
            )
        )
        curves = autoregressive(
            model,
            batches(rollout_windows, chosen, "autoregressive"),
            horizon,
            generator,
        )
    return summarize(teacher, curves)


def write_json(report: FidelityReport, path: str | os.PathLike) -> None:
    """Write the report as JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2))
    tmp.replace(path)


__all__ = [
    "FidelityReport",
    "autoregressive",
    "frame_psnr",
    "frame_ssim",
    "rollout",
    "summarize",
    "teacher_forced",
]
