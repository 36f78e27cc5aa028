"""The inner network of the frame denoiser: a U-Net over the noisy next frame and its context.

DIAMOND's recipe, built from diffusers' ``UNet2DModel`` (its residual blocks, down/up sampling and
middle attention) rather than written again:

* input: the noisy next frame stacked on channels with the context frames (``FrameStackContext``);
* conditioning: the noise level's sinusoidal embedding plus the context's embedding (past actions,
  context noise level), given to every residual block through ``resnet_time_scale_shift=
  "scale_shift"``: group norm, then a scale and shift computed from the embedding (adaptive group
  norm);
* attention only in the middle block; the output convolution starts at zero, so an untrained
  denoiser returns its input (EDM's skip connection), not noise.

``mixture_candidates > 0`` adds that many maps of logits to the output, one per candidate: the
denoiser (``worldsim.models.denoiser``) turns them into per-pixel weights over its candidates for the
clean frame, so that a view the context already shows can be copied, not drawn again.

``space_to_depth > 1`` folds each ``s x s`` pixel patch into channels before the U-Net and unfolds
the output after it: the network then runs at ``H/s x W/s``, about ``s^2`` times fewer operations,
which is what makes real-time dreaming on a CPU possible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import nn


@dataclass
class FrameUNetConfig:
    """Architecture of ``FrameUNet``; stored in a checkpoint's config.json."""

    image_channels: int = 3
    image_size: int = 64
    context_channels: int = 12  # channels the context stacks onto the noisy frame (4 RGB frames)
    block_channels: tuple[int, ...] = (64, 64, 64, 64)
    layers_per_block: int = 2
    norm_groups: int = 32
    attention_head_dim: int = 8
    space_to_depth: int = 1
    refine_channels: int = 0  # > 0: a full-resolution refinement after the U-Net (see FrameUNet)
    mixture_candidates: int = 0  # > 0: per-pixel logits for that many candidates follow the frame's channels

    @property
    def out_channels(self) -> int:
        return self.image_channels + self.mixture_candidates

    @property
    def embedding_dim(self) -> int:
        """Size of the conditioning vector the context must provide (diffusers' time embedding)."""
        return self.block_channels[0] * 4


class FrameUNet(nn.Module):
    """``F(x, c_noise, context_channels, context_embedding)`` of EDM's preconditioned denoiser.

    Shapes: ``noisy float[B, C, H, W]``, ``c_noise float[B]``, ``context float[B, context_channels,
    H, W]``, ``embedding float[B, embedding_dim]`` -> ``float[B, C + mixture_candidates, H, W]``.
    """

    def __init__(self, config: FrameUNetConfig):
        super().__init__()
        self.config = config
        fold = config.space_to_depth**2
        depth = len(config.block_channels)
        self.unet = UNet2DModel(
            sample_size=config.image_size // config.space_to_depth,
            in_channels=(config.image_channels + config.context_channels) * fold,
            out_channels=config.out_channels * fold,
            block_out_channels=tuple(config.block_channels),
            layers_per_block=config.layers_per_block,
            down_block_types=("DownBlock2D",) * depth,
            up_block_types=("UpBlock2D",) * depth,
            add_attention=True,  # the middle block only
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_groups,
            time_embedding_type="positional",
            flip_sin_to_cos=True,
            class_embed_type="identity",  # the context's embedding is added to the noise level's
            resnet_time_scale_shift="scale_shift",
        )
        nn.init.zeros_(self.unet.conv_out.weight)
        nn.init.zeros_(self.unet.conv_out.bias)
        self.refine = None
        if config.refine_channels:
            # Pixel-level work at full resolution, which a U-Net run at H/s x W/s cannot do: passing
            # the noise of one pixel through (what denoising at a low noise level asks: measured,
            # the s2d-4 U-Net alone denoised sigma 0.25 no better than guessing the mean) and
            # smoothing the seams of its s x s blocks. Three 3x3 convs over the U-Net's output, the
            # noisy frame, the context and the noise level; the last starts at zero.
            width, channels = config.refine_channels, config.image_channels
            self.refine = nn.Sequential(
                nn.Conv2d(config.out_channels + channels + config.context_channels + 1, width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(width, config.out_channels, 3, padding=1),
            )
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)

    def forward(self, noisy: torch.Tensor, c_noise: torch.Tensor, context: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noisy, context], dim=1)
        s = self.config.space_to_depth
        if s > 1:
            x = nn.functional.pixel_unshuffle(x, s)
        # diffusers' sinusoidal embedding expects timestep-like magnitudes; EDM's c_noise = ln(sigma)/4
        # lies in about [-1.6, 0.8], so it is spread over the embedding's range first.
        out = self.unet(x, c_noise * 250.0, class_labels=embedding).sample
        if s > 1:
            out = nn.functional.pixel_shuffle(out, s)
        if self.refine is not None:
            level = c_noise.reshape(-1, 1, 1, 1).expand(-1, 1, *noisy.shape[-2:])
            out = out + self.refine(torch.cat([out, noisy, context, level], dim=1))
        return out
