"""A lesion segmenter trained on the real masks: does a synthetic image draw its lesion where the
control says?

Edge F1 says whether an image follows its control's outlines; it cannot say whether the region
inside a lesion's outline looks like a lesion. A small U-Net trained once per data set on the real
training split's images and masks (normal images as empty masks; lesion images without a mask are
left out) answers that: its segmentation of a synthetic image is compared (Dice) with the mask of the
real image whose control made it, varied as the control was, beside masks shuffled within the class.
Its own Dice on the real validation split, against own and shuffled masks, says how far to trust it.

``train-segmenter`` writes ``<paths.models>/segmenter/`` (``model.safetensors``, ``segmenter.json``)
and ``<paths.metrics>/segmenter.json``. A data set with no masks in its training split gets a card
saying so, and ``evaluate-synthetic`` skips the measure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from controlbreast.config import Config
from controlbreast.controls.fidelity import dice, shuffled_within_class, versus_shuffled
from controlbreast.data.datasets import ImageSet, load_image_set, read_images
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.errors import MissingInputError
from controlbreast.evaluation.config import SegmenterConfig
from controlbreast.outputs import atomic_folder, write_atomic

WEIGHTS, CARD = "model.safetensors", "segmenter.json"


def _block(inputs: int, outputs: int) -> nn.Sequential:
    groups = 8 if outputs % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(groups, outputs), nn.SiLU(),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.GroupNorm(groups, outputs), nn.SiLU())


class LesionUNet(nn.Module):
    """``forward``: (N, 1, H, W) images in [0, 1] → (N, 1, H, W) lesion logits, any H and W (padded
    inside to a multiple of the coarsest level's stride)."""

    def __init__(self, channels: list[int]):
        super().__init__()
        widths = [1, *channels]
        self.down = nn.ModuleList(_block(a, b) for a, b in pairwise(widths))
        self.up = nn.ModuleList(_block(b + a, a) for a, b in pairwise(channels))
        self.head = nn.Conv2d(channels[0], 1, 1)
        self.stride = 2 ** (len(channels) - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        x = F.pad(images, (0, -width % self.stride, 0, -height % self.stride))
        skips = []
        for level, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if level else x)
            skips.append(x)
        for block, skip in zip(reversed(self.up), reversed(skips[:-1]), strict=True):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:]), skip], dim=1))
        return self.head(x)[..., :height, :width]


@dataclass
class Segmenter:
    """A trained ``LesionUNet`` and its threshold; ``masks`` segments (N, H, W) uint8 images."""

    model: LesionUNet
    threshold: float

    @torch.no_grad()
    def masks(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, H, W) bool: where each image's lesion probability is at least the threshold."""
        self.model.eval()
        found = [torch.sigmoid(self.model(_tensor(images[start:start + batch_size]))) >= self.threshold
                 for start in range(0, len(images), batch_size)]
        return torch.cat(found)[:, 0].numpy() if found else np.zeros(images.shape, bool)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255)[:, None]


def masks_of(prepared: Path, images: ImageSet, lesion_labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) bool masks of ``images`` (empty where none) and (N,) bool: whether each is known —
    it has a mask, or its source label is not a lesion label (so it is known to be empty)."""
    rows = {row.id: row for row in read_manifest(Path(prepared) / "manifest.csv", PreparedRow)}
    has = np.array([rows[i].has_mask for i in images.ids], dtype=bool)
    known = has | np.array([rows[i].source_label not in lesion_labels for i in images.ids], dtype=bool)
    masks = np.zeros(images.images.shape, bool)
    if has.any():
        masks[has] = read_images(Path(prepared) / "masks", [i for i, h in zip(images.ids, has, strict=True)
                                                           if h]) > 127
    return masks, known


def fit(images: np.ndarray, masks: np.ndarray, cfg: SegmenterConfig) -> LesionUNet:
    """Train on (N, H, W) uint8 images and bool masks: BCE + soft Dice, random horizontal flips."""
    torch.manual_seed(cfg.seed)
    generator = np.random.default_rng(cfg.seed)
    model = LesionUNet(cfg.channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=cfg.steps)
    inputs, targets = _tensor(images), torch.from_numpy(masks).float()[:, None]
    model.train()
    for _ in tqdm(range(cfg.steps), desc="train-segmenter", unit="step"):
        rows = torch.from_numpy(generator.choice(len(images), size=min(cfg.batch_size, len(images)),
                                                 replace=False))
        flip = bool(generator.random() < 0.5)
        x, y = inputs[rows], targets[rows]
        x, y = (x.flip(-1), y.flip(-1)) if flip else (x, y)
        loss = _loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    probability = torch.sigmoid(logits)
    overlap = (probability * targets).sum(dim=(1, 2, 3))
    total = probability.sum(dim=(1, 2, 3)) + targets.sum(dim=(1, 2, 3))
    soft_dice = (2 * overlap + 1) / (total + 1)
    return F.binary_cross_entropy_with_logits(logits, targets) + (1 - soft_dice).mean()


def dice_against_masks(found: np.ndarray, masks: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Dice of segmentations (N, H, W) bool with their own masks vs masks shuffled within the class,
    over the images whose mask is not empty (a normal image has no lesion to place)."""
    kept = masks.reshape(len(masks), -1).any(axis=1)
    found, masks, labels = found[kept], masks[kept], labels[kept]
    if len(found) < 2:
        return {"images": len(found)}
    order = shuffled_within_class(labels, seed)
    matched = np.array([dice(f, m) for f, m in zip(found, masks, strict=True)])
    other = np.array([dice(f, m) for f, m in zip(found, masks[order], strict=True)])
    return {**versus_shuffled(matched, other), "images": len(found)}


def train_segmenter(config: Config) -> dict:
    """Train on the real training split, measure on validation, write the model and its card."""
    began, cfg = time.perf_counter(), config.segmenter
    prepared = Path(config.paths.prepared)
    train, val = (load_image_set(prepared, config.data.classes, (split,)) for split in ("train", "val"))
    masks, known = masks_of(prepared, train, config.data.lesion_labels)
    card: dict = {"train_images": int(known.sum()),
                  "train_masks": int(masks.reshape(len(masks), -1).any(axis=1).sum())}
    model = None
    if card["train_masks"]:
        model = fit(train.images[known], masks[known], cfg)
        val_masks, _ = masks_of(prepared, val, config.data.lesion_labels)
        found = Segmenter(model, cfg.threshold).masks(val.images)
        card["val_dice"] = dice_against_masks(found, val_masks, val.labels, cfg.seed)
    card["seconds"] = time.perf_counter() - began
    _write(config, model, card)
    return card


def _write(config: Config, model: LesionUNet | None, card: dict) -> None:
    with atomic_folder(Path(config.paths.models) / "segmenter") as build:
        if model is not None:
            save_file(model.state_dict(), str(build / WEIGHTS))
        settings = {"channels": config.segmenter.channels, "threshold": config.segmenter.threshold}
        (build / CARD).write_text(json.dumps(settings | card, indent=2))
    write_atomic(Path(config.paths.metrics) / "segmenter.json", json.dumps(card, indent=2).encode())


def load_segmenter(folder: Path) -> Segmenter | None:
    """The trained segmenter in ``folder``; None when its data set had no training masks."""
    folder = Path(folder)
    if not (folder / CARD).is_file():
        raise MissingInputError(f"{folder}: no lesion segmenter (run `controlbreast train-segmenter` first)")
    card = json.loads((folder / CARD).read_text())
    if not (folder / WEIGHTS).is_file():
        return None
    model = LesionUNet(card["channels"])
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return Segmenter(model.eval(), float(card["threshold"]))
