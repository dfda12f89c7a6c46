"""The training split, encoded once, and the deterministic order in which training visits it.

diffusers' ControlNet example encodes every batch with the VAE on every step; at 512 px that encode
costs more than the UNet forward (about 1.08 vs 0.68 TFLOP per image). Here the split is encoded
once per data set and stored beside the base model (``latents.safetensors``), and both training
stages read it. For the pixel back end "encoding" is the scaling to [-1, 1].

Which images a step sees, and its noise, are functions of (seed, step) alone, so a run resumed
from a checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from controlbreast.data.datasets import ImageSet
from controlbreast.errors import MissingInputError


def to_unit(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W) uint8 → float32 (N, C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return tensor[:, None] if tensor.ndim == 3 else tensor


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) float in [0, 1] → (N, H, W) uint8."""
    return (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@dataclass
class TrainingSet:
    """latents (N, c, h, w) float32; labels (N,) int64; controls (N, C, H, W) float32 in [0, 1],
    or None for the base stage."""

    ids: tuple[str, ...]
    latents: torch.Tensor
    labels: torch.Tensor
    controls: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.ids)


@torch.no_grad()
def encode_images(codec, images: np.ndarray, batch_size: int = 16) -> torch.Tensor:
    """(N, H, W) uint8 → (N, c, h, w) float32 samples of the diffusion (the codec's latents)."""
    pixels = to_unit(images) * 2 - 1
    return torch.cat([codec.encode(pixels[i:i + batch_size]).float()
                      for i in range(0, len(pixels), batch_size)])


def save_latents(path: Path, images: ImageSet, latents: torch.Tensor) -> None:
    """Store the encoded split with its ids and labels (safetensors; ids in the metadata)."""
    save_file({"latents": latents.contiguous(), "labels": torch.from_numpy(images.labels)}, str(path),
              metadata={"ids": "\n".join(images.ids)})


def load_latents(path: Path) -> tuple[tuple[str, ...], torch.Tensor, torch.Tensor]:
    """(ids, latents, labels) as written by ``save_latents``."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no encoded training split (run train_base first)")
    with safe_open(str(path), framework="pt") as handle:
        ids = tuple(handle.metadata()["ids"].split("\n"))
    tensors = load_file(str(path))
    return ids, tensors["latents"], tensors["labels"]


@lru_cache(maxsize=4)
def _permutation(size: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def batch_indices(step: int, batch_size: int, size: int, seed: int) -> torch.Tensor:
    """(batch_size,) indices of micro-step ``step``: epochs of seeded permutations, end to end."""
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    return torch.stack([_permutation(size, seed, int(p) // size)[int(p) % size] for p in positions])


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one micro-step's noise, timesteps and label dropout, the same in every
    process of a launch (each uses its share of the draws). The seed formula is unchanged from when
    processes drew their own noise (``* 64 + process``, process 0), so old runs resume exactly."""
    return torch.Generator().manual_seed(((seed * 1_000_003) + step) * 64)
