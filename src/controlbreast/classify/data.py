"""What each arm trains on. Validation is always the real validation split; test is never read here.

Arms (``ARMS``):

- ``real``: the real training split, with classic augmentation (``classifier.augment``: flips,
  shifts, rotations, scale, contrast, noise) — the baseline that synthetic images must beat.
- ``real-noaug``: the same images with no augmentation at all, so that the table separates what
  classic augmentation buys (``real − real-noaug``) from what synthetic images add on top of it.
- ``real+synthetic``: the real training split plus ``round(mix_ratio * n_real)`` synthetic images
  (``n_real`` = real training images), drawn without replacement from ``paths.synthetic`` with the
  run's seed, so each seed sees another draw.
- ``synthetic``: ``n_real`` synthetic images drawn the same way and no real image (train on
  synthetic, test on real), so this arm differs from ``real`` in the source of its images only.

A synthetic image made from the control of a validation or test image would leak that image into
training, so every synthetic image's ``control_id`` must be a real training id.

Data efficiency (``classifier.real_fractions``): with ``fraction`` < 1, ``real`` and
``real+synthetic`` use the nested subset of the real training split of that fraction
(``training_subset``), and ``real+synthetic`` draws ``round(mix_ratio * n_subset)`` synthetic images
only among those whose ``control_id`` is in the subset: a synthetic image made from an image
outside it would carry that real image's information into a "fraction of the data" arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import PreparedRow, SyntheticRow, read_manifest
from controlbreast.data.splits import nested_subsets
from controlbreast.errors import DataError
from controlbreast.mixing import ARMS, FRACTION_ARMS, NO_AUGMENTATION, arm_draws


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


def draw(folder: Path, classes: tuple[str, ...], eligible: Sequence[int], count: int, seed: int,
         why: str = "") -> ImageSet:
    """``count`` synthetic images of ``folder`` drawn without replacement with ``seed`` from the
    manifest positions ``eligible`` (``synthetic_rows``), kept in the set's order; only the drawn
    PNGs are decoded, so a 16,000-image set costs what the draw costs. ``why`` (which arm needs
    them and what to change) completes the error when there are too few."""
    if count > len(eligible):
        raise DataError(f"{folder}: {count} synthetic images needed but only {len(eligible)} there"
                        f"{f' ({why})' if why else ''}")
    chosen = np.random.default_rng(seed).choice(len(eligible), size=count, replace=False)
    return load_image_set(folder, classes, schema=SyntheticRow, select=np.sort(np.asarray(eligible)[chosen]))


@dataclass(frozen=True)
class InputView:
    """What a classifier's real training images are: their modality (``mixed`` when the split holds
    both) and whether they are patches cut from films rather than whole images."""

    modality: str
    patches: bool


def input_view(config: Config) -> InputView:
    """The ``InputView`` of the prepared manifest's training split."""
    rows = [row for row in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if row.split == "train"]
    modalities = {row.modality for row in rows}
    return InputView(modalities.pop() if len(modalities) == 1 else "mixed",
                     any(row.patch_kind != "image" for row in rows))


def training_subsets(config: Config) -> dict[float, frozenset[str]]:
    """The nested subsets of the real training split, one per ``classifier.real_fractions``."""
    rows = [row for row in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if row.split == "train"]
    return nested_subsets([r.id for r in rows], [r.group for r in rows], [r.label for r in rows],
                          config.classifier.real_fractions, config.classifier.subset_seed)


def _subset(config: Config, fraction: float) -> frozenset[str]:
    subsets = training_subsets(config)
    if fraction not in subsets:
        raise DataError(f"fraction {fraction:g} is not one of classifier.real_fractions "
                        f"{list(config.classifier.real_fractions)}")
    return subsets[fraction]


def within(images: ImageSet, ids: frozenset[str]) -> ImageSet:
    """The images of ``images`` whose id is in ``ids``, in their order."""
    return images.subset(np.flatnonzero([i in ids for i in images.ids]))


def synthetic_rows(folder: Path, train_ids: set[str], subset_ids: set[str]) -> list[int]:
    """Positions in the synthetic manifest of the images made from controls in ``subset_ids``,
    after checking that every image comes from the training split (``train_ids``)."""
    check_provenance(folder, train_ids)
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    return [i for i, row in enumerate(rows) if row.control_id in subset_ids]


def load_training_data(config: Config, arm: str, seed: int, fraction: float = 1.0) -> TrainingData:
    """The train and validation sets of ``arm`` for ``seed`` (see the module docstring)."""
    if arm not in ARMS or (fraction != 1.0 and arm not in FRACTION_ARMS):
        raise ValueError(f"unknown arm {arm!r} at fraction {fraction:g}; expected one of {list(ARMS)} "
                         f"(below 1: {list(FRACTION_ARMS)})")
    classes = config.data.classes
    real = load_image_set(config.paths.prepared, classes, splits=("train", "val"))
    whole, val = real.split("train"), real.split("val")
    train = whole if fraction == 1.0 else within(whole, _subset(config, fraction))
    if arm in ("real", NO_AUGMENTATION):
        return TrainingData(train, val, len(train), 0)
    folder = Path(config.paths.synthetic)
    eligible = synthetic_rows(folder, set(whole.ids), set(train.ids))
    more = "set generate.per_class: auto (or raise it) and run generate again"
    needs = arm_draws(len(train), config.classifier.mix_ratio)
    if arm == "synthetic":
        why = f"the synthetic arm draws as many as the {len(train)} real training images; {more}"
        return TrainingData(draw(folder, classes, eligible, needs[arm], seed, why), val, 0, len(train))
    why = (f"real+synthetic draws round(classifier.mix_ratio {config.classifier.mix_ratio:g} x "
           f"{len(train)} real); {more}, or lower classifier.mix_ratio")
    extra = draw(folder, classes, eligible, needs[arm], seed, why)
    return TrainingData(concatenate(train, extra), val, len(train), len(extra))
