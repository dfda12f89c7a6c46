"""From pixels to model inputs: the same preparation for training, evaluation and prediction,
and the random augmentations applied to training batches only.

Every image reaches a classifier the way ingest prepared the training images: decoded to (H, W)
uint8 grayscale (any PNG/JPEG/TIFF/DICOM), fitted to the card's ``image_size`` by ``resize``, then
scaled to [0, 1] and normalised with the card's mean and std.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from controlbreast.classify.config import AugmentConfig
from controlbreast.classify.models import ModelCard
from controlbreast.data.imageio import decode_dicom, decode_raster
from controlbreast.data.preprocess import fit_to_square


def decode_image(data: bytes, name: str) -> np.ndarray:
    """(H, W) uint8 grayscale of an encoded image; a bad one raises ``SampleError`` naming it."""
    from controlbreast.errors import SampleError

    if not data:
        raise SampleError(name, "file is empty (0 bytes)")
    if data[128:132] == b"DICM":
        return decode_dicom(data, name)[0]
    return decode_raster(data, name)[0]


def fit_images(images: list[np.ndarray], card: ModelCard) -> np.ndarray:
    """(N, S, S) uint8: each (H, W) image fitted to the card's size as ingest does."""
    size = card.image_size
    return np.stack([image if image.shape == (size, size) else fit_to_square(image, size, card.resize)
                     for image in images])


def scale(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) uint8 → (N, 1, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1) / 255.0


def normalise(batch: torch.Tensor, card: ModelCard) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] → the model's input scale."""
    return (batch - card.mean) / card.std


class Augment:
    """Random flip, rotation, scale and shift (one affine warp), contrast, brightness and noise.

    Works on (N, 1, H, W) batches in [0, 1]; areas moved in from outside are black, like ingest's
    letterbox padding. Every draw comes from ``generator``, so a seed fixes the whole run.
    """

    def __init__(self, settings: AugmentConfig):
        self.settings = settings

    def _uniform(self, n: int, limit: float, generator: torch.Generator) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2.0 - 1.0) * limit

    def _warp(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s, n = self.settings, batch.shape[0]
        angle = self._uniform(n, math.radians(s.max_rotation), generator)
        zoom = 1.0 + self._uniform(n, s.max_scale, generator)
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if s.hflip else 1.0
        shift = self._uniform(2 * n, 2.0 * s.max_shift, generator).view(n, 2)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                             torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s, n = self.settings, batch.shape[0]
        batch = self._warp(batch, generator)
        contrast = (1.0 + self._uniform(n, s.intensity, generator)).view(n, 1, 1, 1)
        brightness = self._uniform(n, s.intensity / 2.0, generator).view(n, 1, 1, 1)
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        batch = (batch - mean) * contrast + mean + brightness
        if s.noise:
            batch = batch + torch.randn(batch.shape, generator=generator) * s.noise
        return batch.clamp(0.0, 1.0)
