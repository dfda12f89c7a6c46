"""What each arm trains on. Validation is always the real validation split; test is never read here.

Arms (``ARMS``):

- ``real``: the real training split.
- ``real+synthetic``: the real training split plus ``round(mix_ratio * n_real)`` synthetic images
  (``n_real`` = real training images), drawn without replacement from ``paths.synthetic`` with the
  run's seed, so each seed sees another draw.
- ``synthetic``: ``n_real`` synthetic images drawn the same way and no real image (train on
  synthetic, test on real), so this arm differs from ``real`` in the source of its images only.

A synthetic image made from the control of a validation or test image would leak that image into
training, so every synthetic image's ``control_id`` must be a real training id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import SyntheticRow, read_manifest
from controlbreast.errors import DataError
from controlbreast.mixing import ARMS, arm_draws


@dataclass(frozen=True)
class TrainingData:
    """``train``: what the model learns from; ``val``: real validation images for selection."""

    train: ImageSet
    val: ImageSet
    real_images: int
    synthetic_images: int


def concatenate(first: ImageSet, second: ImageSet) -> ImageSet:
    """Both sets in one, first then second (same classes, same image size)."""
    if first.images.shape[1:] != second.images.shape[1:]:
        raise DataError(f"synthetic images are {second.images.shape[2]}x{second.images.shape[1]} px "
                         f"but the real ones {first.images.shape[2]}x{first.images.shape[1]}")
    return ImageSet(ids=first.ids + second.ids, labels=np.concatenate([first.labels, second.labels]),
                    splits=first.splits + second.splits,
                    images=np.concatenate([first.images, second.images]), classes=first.classes)


def check_provenance(folder: Path, train_ids: set[str]) -> None:
    """Every synthetic image must come from a training-split control; raise naming the others."""
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    outside = sorted({row.control_id for row in rows} - train_ids)
    if outside:
        raise DataError(f"{folder}: {len(outside)} synthetic images come from controls outside the "
                         f"training split (a leak into validation/test), e.g. {outside[:5]}")


def draw(folder: Path, classes: tuple[str, ...], count: int, seed: int, why: str = "") -> ImageSet:
    """``count`` synthetic images of ``folder`` drawn without replacement with ``seed``, kept in the
    set's order; only the drawn PNGs are decoded, so a 16,000-image set costs what the draw costs.
    ``why`` (which arm needs them and what to change) completes the error when there are too few."""
    available = len(read_manifest(Path(folder) / "manifest.csv", SyntheticRow))
    if count > available:
        raise DataError(f"{folder}: {count} synthetic images needed but only {available} there"
                        f"{f' ({why})' if why else ''}")
    chosen = np.random.default_rng(seed).choice(available, size=count, replace=False)
    return load_image_set(folder, classes, schema=SyntheticRow, select=np.sort(chosen))


def load_training_data(config: Config, arm: str, seed: int) -> TrainingData:
    """The train and validation sets of ``arm`` for ``seed`` (see the module docstring)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {list(ARMS)}")
    classes = config.data.classes
    real = load_image_set(config.paths.prepared, classes, splits=("train", "val"))
    train, val = real.split("train"), real.split("val")
    if arm == "real":
        return TrainingData(train, val, len(train), 0)
    folder = Path(config.paths.synthetic)
    check_provenance(folder, set(train.ids))
    more = "set generate.per_class: auto (or raise it) and run generate again"
    needs = arm_draws(len(train), config.classifier.mix_ratio)
    if arm == "synthetic":
        why = f"the synthetic arm draws as many as the {len(train)} real training images; {more}"
        return TrainingData(draw(folder, classes, needs[arm], seed, why), val, 0, len(train))
    why = (f"real+synthetic draws round(classifier.mix_ratio {config.classifier.mix_ratio:g} x "
           f"{len(train)} real); {more}, or lower classifier.mix_ratio")
    extra = draw(folder, classes, needs[arm], seed, why)
    return TrainingData(concatenate(train, extra), val, len(train), len(extra))
