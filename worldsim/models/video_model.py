"""The video diffusion model: clip denoiser + clip sampler + how frames are fed to it, from one config.

``VideoModelConfig`` is what a video checkpoint's ``config.json`` stores under ``"video"``;
``load_video_model`` rebuilds it. ``VideoModel.clips`` turns frames as the envs emit them
(``uint8[B, F, H, W, 3]``) into the model's clips (``float[B, 3, F, s, s]`` in ``[-1, 1]``, area
downscaled to ``image_size``); ``VideoModel.generate`` draws a clip of any length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from worldsim.core.checkpoint import Checkpoint, load_checkpoint, load_weights
from worldsim.core.checkpoint_kinds import VIDEO_DIFFUSION, require_kind
from worldsim.core.frames import from_uint8
from worldsim.core.serialization import from_dict
from worldsim.diffusion.clip_sampler import ClipSampler, ClipSamplerConfig
from worldsim.errors import WorldsimError
from worldsim.models.video_denoiser import VideoDenoiser, VideoEDMTraining
from worldsim.models.video_unet import VideoUNet, VideoUNetConfig


@dataclass
class VideoModelConfig:
    clip_frames: int = 16  # frames per training clip (and per generated chunk)
    overlap: int = 8  # frames a chunk shares with the one before, when a clip is continued
    unet: VideoUNetConfig = field(default_factory=VideoUNetConfig)
    edm: VideoEDMTraining = field(default_factory=VideoEDMTraining)
    sampler: ClipSamplerConfig = field(default_factory=ClipSamplerConfig)

    def __post_init__(self):
        if not 0 < self.overlap < self.clip_frames:
            raise WorldsimError(f"video overlap must be in 1..clip_frames - 1 = {self.clip_frames - 1}, got {self.overlap}")
        if not 0 < self.edm.max_context < self.clip_frames:
            raise WorldsimError(f"video edm.max_context must be in 1..clip_frames - 1 = {self.clip_frames - 1}, got {self.edm.max_context}")


class VideoModel(nn.Module):
    def __init__(self, config: VideoModelConfig):
        super().__init__()
        self.config = config
        self.denoiser = VideoDenoiser(VideoUNet(config.unet), config.edm)
        self.sampler = ClipSampler(config.sampler, sigma_data=config.edm.sigma_data)

    def clips(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8[B, F, H, W, C]`` -> ``float[B, C, F, s, s]`` in ``[-1, 1]`` at the model's size
        ``s`` (an average over whole pixel blocks: ``H`` must be a multiple of ``s``)."""
        size = self.config.unet.image_size
        batch, length, height, width, _ = frames.shape
        if height % size or width % size:
            raise WorldsimError(f"frames of {height}x{width} cannot be area-downscaled to the model's {size}x{size}: use frames a multiple of {size}")
        x = from_uint8(frames).flatten(0, 1)  # float[B * F, C, H, W]
        x = nn.functional.avg_pool2d(x, (height // size, width // size))
        return x.reshape(batch, length, *x.shape[1:]).transpose(1, 2)

    def generate(
        self, num_frames: int, *, batch: int = 1, first: torch.Tensor | None = None, generator: torch.Generator | None = None, progress: bool = False
    ) -> torch.Tensor:
        """A clip ``float[B, C, num_frames, s, s]`` (quantised), starting from the model's clips
        ``first`` when given (at most ``overlap`` frames), in chunks of ``clip_frames``."""
        shape = (self.config.unet.image_channels, self.config.unet.image_size, self.config.unet.image_size)
        return self.sampler.generate(
            self.denoiser, num_frames, self.config.clip_frames, self.config.overlap, shape,
            batch=batch,
            first=first,
            generator=generator,
            progress=progress,
            device=self.device,
        )

    @property
    def device(self) -> torch.device:
        """Where the weights are (and where clips are generated)."""
        return self.denoiser.network.conv_in.weight.device


def load_video_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[VideoModel, Checkpoint]:
    """The video model in a checkpoint folder (weights on ``device``, eval mode); one
    ``WorldsimError`` for any problem with the folder."""
    checkpoint = load_checkpoint(path, map_location=device)
    require_kind(checkpoint.config, VIDEO_DIFFUSION, checkpoint.path)
    model = VideoModel(from_dict(VideoModelConfig, checkpoint.config["video"], where="video"))
    load_weights(model, checkpoint)
    return model.to(device).eval(), checkpoint
