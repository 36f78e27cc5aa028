"""From windows of recorded steps to what the world model trains and is evaluated on.

``SequenceDataset`` yields raw windows (uint8 frames, actions, rewards, terminations, info labels);
``model_batch`` turns a collated batch of them into model inputs and labels: frames as
``float[B, L, C, H, W]`` in ``[-1, 1]``, the change of the game's progress label (Mario's
``x_pos``), and the end class of each step, both as the game description defines them.
"""

from __future__ import annotations

import torch

from worldsim.core.frames import from_uint8
from worldsim.core.game import GameDescription


def model_batch(batch: dict[str, torch.Tensor], game: GameDescription, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``{frames uint8[B, L, H, W, C], actions, rewards, ends, <game labels>}`` -> ``{frames float[B,
    L, C, H, W], actions int64[B, L], rewards float[B, L], progress float[B, L], end_class int64[B, L]}``,
    and ``agent_rewards float[B, L, agents]`` when the game records each agent's reward.

    Labels at index ``i`` describe the step that produced frame ``i`` (zero for a window's first).
    """
    progress = torch.zeros(batch["actions"].shape, dtype=torch.float32)
    if game.progress_label:
        label = batch[game.progress_label].float()
        progress[:, 1:] = label[:, 1:] - label[:, :-1]
    labels = {key: batch[key].numpy() for key in game.end_info_keys.values() if key in batch}
    end_class = torch.from_numpy(game.end_class_of(batch["ends"].numpy(), labels))
    out = {
        "frames": from_uint8(batch["frames"].to(device)),
        "actions": batch["actions"].to(device).long(),
        "rewards": batch["rewards"].to(device).float(),
        "progress": progress.to(device),
        "end_class": end_class.to(device),
    }
    if game.agent_reward_keys:  # each agent's own reward, float[B, L, agents]
        out["agent_rewards"] = torch.stack([batch[key].float() for key in game.agent_reward_keys], dim=-1).to(device)
    return out


def stack_windows(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate ``SequenceDataset`` items into one batch (what a ``DataLoader`` would do)."""
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


__all__ = ["model_batch", "stack_windows"]

