"""A recurrent model of what a step did besides drawing a frame: reward, progress and episode end.

DIAMOND's reward/termination model: a small CNN encodes each transition (the frame before, the
frame after, stacked on channels) with its action, an LSTM carries what it has seen from step to
step, and linear heads read the LSTM's output. Reading more than one generated frame matters: a
death or a flag is a sequence of frames, and one odd generated frame should not end a dream.

Per transition it predicts

* ``reward``: the env's reward for the step (regressed);
* ``progress``: the change of the game's progress label in the step (Mario: ``x_pos``), regressed,
  so that the dream can report the label in ``info``;
* ``end``: logits over the game's end classes (Mario: running / death / flag).

Its recurrent state (``h``, ``c`` of the LSTM, ``float[B, hidden]`` each) belongs to one dream: the
dream engine keeps it per dream and starts it by ``burn_in`` over the reset context.

``end_log_prior`` undoes the oversampling of episode ends in training (windows that end an
episode are drawn ``end_weight`` times more often): in eval mode it is subtracted from the end
logits of every non-running class, so that the predicted probabilities are those of the real game
(logit adjustment), not of the oversampled training draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EndModelConfig:
    """Architecture of ``RecurrentEndModel``; stored in a checkpoint's config.json."""

    channels: tuple[int, ...] = (32, 64, 64, 64)  # one stride-2 conv each: 64x64 -> 4x4
    hidden: int = 256  # LSTM size
    action_dim: int = 32
    num_end_classes: int = 3
    end_log_prior: float = 0.0  # log of the oversampling of episode ends in training


class RecurrentEndModel(nn.Module):
    """``step(previous float[B, C, H, W], frame float[B, C, H, W], action int64[B], state)`` ->
    ``({reward float[B], progress float[B], end float[B, classes]}, state)``; frames in ``[-1, 1]``,
    ``action`` the one whose step turned ``previous`` into ``frame``. With ``num_agent_rewards``
    (a game of several agents that records each one's reward) the outputs add ``agent_rewards
    float[B, agents]``."""

    def __init__(self, config: EndModelConfig, num_actions: int, image_channels: int = 3, image_size: int = 64, num_agent_rewards: int = 0):
        super().__init__()
        self.config = config
        self.num_agent_rewards = num_agent_rewards
        layers: list[nn.Module] = []
        in_channels = 2 * image_channels
        for out_channels in config.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.SiLU()]
            in_channels = out_channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(config.channels)
        self.action_embedding = nn.Embedding(num_actions, config.action_dim)
        self.lstm = nn.LSTMCell(in_channels * side * side + config.action_dim, config.hidden)
        self.out = nn.Linear(config.hidden, 2 + config.num_end_classes + num_agent_rewards)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        zeros = torch.zeros(batch, self.config.hidden, device=device)
        return {"h": zeros, "c": zeros.clone()}

    def step(
        self, previous: torch.Tensor, frame: torch.Tensor, action: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        features = torch.cat([self.encoder(torch.cat([previous, frame], dim=1)), self.action_embedding(action)], dim=1)
        h, c = self.lstm(features, (state["h"], state["c"]))
        return self._outputs(self.out(h)), {"h": h, "c": c}

    def _outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named outputs of the last layer's ``[..., 2 + classes + agents]``."""
        classes = self.config.num_end_classes
        outputs = {"reward": out[..., 0], "progress": out[..., 1], "end": self._calibrated(out[..., 2 : 2 + classes])}
        if self.num_agent_rewards:
            outputs["agent_rewards"] = out[..., 2 + classes :]
        return outputs

    def _calibrated(self, end: torch.Tensor) -> torch.Tensor:
        # Training sees raw logits (fitted to the oversampled ends); inference removes the oversampling.
        if self.training or not self.config.end_log_prior:
            return end
        return torch.cat([end[..., :1], end[..., 1:] - self.config.end_log_prior], dim=-1)

    def sequence(
        self, frames: torch.Tensor, actions: torch.Tensor, state: dict[str, torch.Tensor] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every transition of ``frames float[B, L, C, H, W]`` under ``actions int64[B, L]``
        (``actions[:, i]`` produced ``frames[:, i]``): outputs ``[B, L - 1, ...]`` for frames 1..L-1,
        and the state after the last. The encoder runs on all transitions in one batch."""
        batch, length = frames.shape[:2]
        if state is None:
            state = self.initial_state(batch, frames.device)
        if length < 2:
            return self._outputs(frames.new_zeros(batch, 0, self.out.out_features)), state
        pairs = torch.cat([frames[:, :-1], frames[:, 1:]], dim=2).flatten(0, 1)
        features = self.encoder(pairs).unflatten(0, (batch, length - 1))
        features = torch.cat([features, self.action_embedding(actions[:, 1:])], dim=2)
        h, c, outputs = state["h"], state["c"], []
        for t in range(length - 1):
            h, c = self.lstm(features[:, t], (h, c))
            outputs.append(self.out(h))
        return self._outputs(torch.stack(outputs, dim=1)), {"h": h, "c": c}
