"""GenEx's explorer model on diffusers' stable-video-diffusion pieces: from one panorama, the
panoramas of the next steps forward.

The network is diffusers' ``UNetSpatioTemporalConditionModel`` (SVD's U-Net), built from a config
this machine trains, in pixel space. As SVD conditions on its first frame, every frame of the
clip gets the current panorama (noise-augmented) stacked on its channels, and one cross-attention
token: a small CNN's encoding of that panorama (SVD's CLIP image embedding; nothing is downloaded
here). ``added_time_ids`` are SVD's three micro-conditions (fps, motion bucket, the conditioning
noise level), the first two fixed. ``space_to_depth`` folds pixel patches into channels so that the
U-Net runs at ``H/s x W/s``, as the frame denoiser does.

Preconditioning is EDM's with v-prediction (SVD_Xtend's recipe; diffusers' ``EDMEulerScheduler``
formulas), noise levels log-normal (``P_mean`` 0.7, ``P_std`` 1.6), the conditioning panorama
noised at a level drawn from LogNormal(-3, 0.5), and dropped (zeroed) for 10% of the clips.

GenEx trains in two stages, and so does ``worldsim train --model explorer``: the spatial (image)
layers first, on one-frame clips, then only the ``TemporalBasicTransformerBlock``s
(``temporal_parameters``) on whole clips. The optional spherical-consistency loss rolls the clip (input,
noise and target alike) by a random yaw and scores the prediction on it too: the panorama's left and
right edges are one place, and turned, its seam lies inside the frame where the two must join.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import EDMEulerScheduler, UNetSpatioTemporalConditionModel
from torch import nn

FIXED_FPS, FIXED_MOTION_BUCKET = 6.0, 127.0  # SVD's micro-conditions, fixed as GenEx fixes them
START_PANORAMAS_FILE = "start_panoramas.npz"  # real panoramas to start walks from: uint8[N, H, W, C]


@dataclass
class ExplorerNoise:
    """How training draws noise (EDM, SVD_Xtend's values) and conditioning."""

    sigma_data: float = 0.5
    log_sigma_mean: float = 0.7
    log_sigma_std: float = 1.6
    sigma_min: float = 2e-3
    sigma_max: float = 80.0
    condition_log_sigma_mean: float = -3.0  # the conditioning panorama's noise: LogNormal(-3, 0.5)
    condition_log_sigma_std: float = 0.5
    condition_dropout: float = 0.1
    spherical_weight: float = 0.0  # > 0: the spherical-consistency loss, this much of the total


@dataclass
class ExplorerConfig:
    """``configs/model/explorer.yaml``: the clip, the U-Net's size, the noise."""

    image_height: int = 64
    image_width: int = 128
    image_channels: int = 3
    frames: int = 4  # panoramas generated per clip: after 1..frames steps forward
    turn_degrees: float = 22.5  # the world's turn (a roll of the panorama), for the env; the network does not use it
    space_to_depth: int = 4
    block_channels: tuple[int, ...] = (32, 64, 64)  # SVD's blocks group-normalise in 32 groups: multiples of 32
    attention_heads: tuple[int, ...] = (2, 4, 4)
    layers_per_block: int = 1
    cross_attention_dim: int = 64
    time_embed_dim: int = 32  # each of the three micro-conditions' sinusoidal embedding
    encoder_channels: tuple[int, ...] = (16, 32, 64)  # the conditioning token's CNN (stride 2 each)
    refine_channels: int = 0  # > 0: a full-resolution refinement after the U-Net (see PanoramaExplorer)
    noise: ExplorerNoise = field(default_factory=ExplorerNoise)


class PanoramaConv2d(nn.Conv2d):
    """A 3x3 convolution over panoramas ``float[B, C, H, W]``: padded round in azimuth (the left and
    right edges are one place), with zeros in elevation."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1))
        return super().forward(x)


def temporal_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters of the U-Net's ``TemporalBasicTransformerBlock``s: what GenEx fine-tunes."""
    return [(name, parameter) for name, parameter in model.named_parameters() if "temporal_transformer_blocks" in name]


class PanoramaExplorer(nn.Module):
    """Clips ``float[B, F, C, H, W]`` in ``[-1, 1]`` from a panorama ``float[B, C, H, W]``.

    ``denoise(noisy, sigma, condition, condition_sigma)`` is the clean estimate of ``noisy``
    (``sigma float[B]``); ``loss(clips, condition)`` EDM's weighted loss.
    """

    def __init__(self, config: ExplorerConfig):
        super().__init__()
        self.config = config
        s, channels = config.space_to_depth, config.image_channels
        depth = len(config.block_channels)
        self.unet = UNetSpatioTemporalConditionModel(
            sample_size=(config.image_height // s, config.image_width // s),
            in_channels=2 * channels * s * s,
            out_channels=channels * s * s,
            down_block_types=("CrossAttnDownBlockSpatioTemporal",) * (depth - 1) + ("DownBlockSpatioTemporal",),
            up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * (depth - 1),
            block_out_channels=tuple(config.block_channels),
            addition_time_embed_dim=config.time_embed_dim,
            projection_class_embeddings_input_dim=3 * config.time_embed_dim,
            layers_per_block=config.layers_per_block,
            cross_attention_dim=config.cross_attention_dim,
            num_attention_heads=tuple(config.attention_heads),
            num_frames=config.frames,
        )
        nn.init.zeros_(self.unet.conv_out.weight)
        nn.init.zeros_(self.unet.conv_out.bias)
        # A per-pixel path around the U-Net, linear in the folded input and scaled per input channel by the
        # noise level. The U-Net's first block has block_channels[0] channels for the 2 * C * s * s values
        # of each folded position: too few to carry every pixel's noise and the conditioning panorama
        # through, and at middle noise levels EDM's output needs both in proportions that depend on
        # sigma (c_skip leaves part of the noise for the network to cancel). Without it, samples kept
        # that noise. The gains start at zero: an untrained explorer is still EDM's skip alone.
        folded_in, folded_out = 2 * channels * s * s, channels * s * s
        self.pixel_skip = nn.Conv2d(folded_in, folded_out, 1, bias=False)
        self.pixel_gain = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, folded_in))
        nn.init.zeros_(self.pixel_gain[-1].weight)
        nn.init.zeros_(self.pixel_gain[-1].bias)
        self.refine = None
        if config.refine_channels:
            # Per-pixel work at full resolution, which the U-Net at H/s x W/s does poorly: its last block
            # has block_channels[0] features for the C * s * s output values of a folded position, and
            # at low noise levels (the sampler's last step) the output must cancel each pixel's own
            # noise; samples kept a grain of it, and the checkered floor smeared. Three 3x3 convolutions
            # over the U-Net's output, the noisy frame, the conditioning panorama and the noise level,
            # wrapping round in azimuth like the panorama; the last starts at zero.
            width = config.refine_channels
            self.refine = nn.Sequential(
                PanoramaConv2d(3 * channels + 1, width),
                nn.SiLU(),
                PanoramaConv2d(width, width),
                nn.SiLU(),
                PanoramaConv2d(width, channels),
            )
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)
        layers, width = [], channels
        for out in config.encoder_channels:
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.SiLU()]
            width = out
        self.condition_encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, config.cross_attention_dim))
        noise = config.noise
        self.preconditioning = EDMEulerScheduler(sigma_data=noise.sigma_data, prediction_type="v_prediction")

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, condition: torch.Tensor, condition_sigma: torch.Tensor) -> torch.Tensor:
        """``noisy float[B, F, C, H, W]`` at ``sigma float[B]``; ``condition float[B, C, H, W]`` the
        current panorama as given (already noised by ``condition_sigma float[B]``, or zeros when dropped)."""
        s = self.config.space_to_depth
        batch, frames = noisy.shape[:2]
        sigma_5d = sigma.reshape(-1, 1, 1, 1, 1)
        scaled = self.preconditioning.precondition_inputs(noisy, sigma_5d)
        stacked = torch.cat([scaled, condition[:, None].expand(-1, frames, -1, -1, -1)], dim=2)
        folded = F.pixel_unshuffle(stacked.flatten(0, 1), s).unflatten(0, (batch, frames))
        token = self.condition_encoder(condition)[:, None]
        micro = torch.stack([torch.full_like(sigma, FIXED_FPS), torch.full_like(sigma, FIXED_MOTION_BUCKET), condition_sigma], dim=1)
        c_noise = self.preconditioning.precondition_noise(sigma)
        output = self.unet(folded, c_noise, encoder_hidden_states=token, added_time_ids=micro).sample
        gain = self.pixel_gain(c_noise.reshape(-1, 1).to(folded.dtype)).reshape(batch, 1, -1, 1, 1)
        output = output + self.pixel_skip((gain * folded).flatten(0, 1)).unflatten(0, (batch, frames))
        output = F.pixel_shuffle(output.flatten(0, 1), s)
        if self.refine is not None:
            level = c_noise.reshape(-1, 1, 1, 1, 1).expand(-1, frames, 1, *noisy.shape[-2:]).to(output.dtype)
            inputs = torch.cat([output.unflatten(0, (batch, frames)), stacked, level], dim=2)
            output = output + self.refine(inputs.flatten(0, 1))
        output = output.unflatten(0, (batch, frames))
        return self.preconditioning.precondition_outputs(noisy, output, sigma_5d)

    def noisy_condition(self, panorama: torch.Tensor, generator: torch.Generator | None = None, train: bool = False):
        """The panorama noise-augmented as in training (and dropped for some clips when ``train``):
        ``(condition float[B, C, H, W], condition_sigma float[B])``."""
        noise = self.config.noise
        batch = panorama.shape[0]
        log_sigma = noise.condition_log_sigma_mean + noise.condition_log_sigma_std * torch.randn(
            batch, device=panorama.device, generator=generator
        )
        condition_sigma = log_sigma.exp()
        condition = panorama + condition_sigma.reshape(-1, 1, 1, 1) * torch.randn(
            panorama.shape, device=panorama.device, generator=generator
        )
        if train and noise.condition_dropout > 0:
            kept = torch.rand(batch, device=panorama.device, generator=generator) >= noise.condition_dropout
            condition = condition * kept.reshape(-1, 1, 1, 1)
        return condition, condition_sigma

    def sampling_condition(self, panorama: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The panorama as sampling conditions on it: noised by ``noise`` (unit Gaussian, its shape) at
        the median of training's conditioning noise; ``(condition float[B, C, H, W], condition_sigma float[B])``."""
        condition_sigma = torch.full((panorama.shape[0],), math.exp(self.config.noise.condition_log_sigma_mean), device=panorama.device)
        return panorama + condition_sigma.reshape(-1, 1, 1, 1) * noise, condition_sigma

    def loss(self, clips: torch.Tensor, panorama: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """EDM's weighted loss of ``clips float[B, F, C, H, W]`` generated from ``panorama float[B, C, H, W]``."""
        noise = self.config.noise
        batch, device = clips.shape[0], clips.device
        log_sigma = noise.log_sigma_mean + noise.log_sigma_std * torch.randn(batch, device=device, generator=generator)
        sigma = log_sigma.exp().clamp(noise.sigma_min, noise.sigma_max)
        noisy = clips + sigma.reshape(-1, 1, 1, 1, 1) * torch.randn(clips.shape, device=device, generator=generator)
        condition, condition_sigma = self.noisy_condition(panorama, generator, train=True)
        denoised = self.denoise(noisy, sigma, condition, condition_sigma)
        weight = (sigma**2 + noise.sigma_data**2) / (sigma * noise.sigma_data) ** 2  # EDM's lambda(sigma)
        error = (denoised - clips) ** 2
        loss = (weight * error.mean(dim=(1, 2, 3, 4))).mean()
        if noise.spherical_weight > 0:
            # The same clip turned by a random yaw: the input, its noise and the target rolled alike, so the
            # panorama's seam (its left and right edges, one place) lies inside the frame the U-Net sees.
            shift = int(torch.randint(1, clips.shape[-1], (1,), generator=generator).item())
            turned = self.denoise(torch.roll(noisy, shift, dims=-1), sigma, torch.roll(condition, shift, dims=-1), condition_sigma)
            turned_error = (turned - torch.roll(clips, shift, dims=-1)) ** 2
            loss = (1 - noise.spherical_weight) * loss + noise.spherical_weight * (weight * turned_error.mean(dim=(1, 2, 3, 4))).mean()
        return loss


def load_explorer(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PanoramaExplorer, np.ndarray]:
    """The explorer in a checkpoint folder (eval mode, on ``device``) and its real start panoramas
    ``uint8[N, H, W, C]``; every problem is one ``WorldsimError`` naming the file."""
    from worldsim.core.checkpoint import load_checkpoint, load_weights
    from worldsim.core.checkpoint_kinds import PANORAMA_EXPLORER, require_kind
    from worldsim.core.serialization import from_dict
    from worldsim.errors import WorldsimError

    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, PANORAMA_EXPLORER, checkpoint.path)
    config = from_dict(ExplorerConfig, checkpoint.config["explorer"], where="explorer")
    model = PanoramaExplorer(config)
    load_weights(model, checkpoint)
    file = Path(path) / START_PANORAMAS_FILE
    try:
        with np.load(file, allow_pickle=False) as data:
            panoramas = data["panoramas"]
    except (OSError, ValueError, KeyError) as error:
        raise WorldsimError(
            f"{file} is missing or corrupted ({error}): an explorer needs real panoramas to start from; train or copy it again"
        ) from error
    expected = (config.image_height, config.image_width, config.image_channels)
    if panoramas.dtype != np.uint8 or panoramas.ndim != 4 or panoramas.shape[1:] != expected or len(panoramas) == 0:
        raise WorldsimError(
            f"{file} holds {panoramas.dtype}{list(panoramas.shape)}; this explorer needs uint8[N, {', '.join(map(str, expected))}], N >= 1"
        )
    return model.to(device).eval(), panoramas
