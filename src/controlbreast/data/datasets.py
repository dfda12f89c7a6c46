"""In-memory views of the prepared set and its controls, for training and evaluation.

The default data (64 px, a few hundred images) fits in memory many times over, and so does BUSI at
128 px: loading every image once into one uint8 array beats decoding PNGs on every step on a CPU.
Labels are indices into ``data.classes``, so every model and metric shares one label order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controlbreast.data.imageio import load_png
from controlbreast.data.manifest import PreparedRow, SyntheticRow, read_manifest
from controlbreast.errors import DataError


@dataclass(frozen=True)
class ImageSet:
    """Images with their ids, labels and splits.

    ``images``: (N, H, W) uint8; ``labels``: (N,) int64 indices into ``classes``.
    """

    ids: tuple[str, ...]
    labels: np.ndarray
    splits: tuple[str, ...]
    images: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: Sequence[int] | np.ndarray) -> ImageSet:
        """The images at positions ``keep`` (indices or a boolean mask), in that order."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, int)
        return ImageSet(ids=tuple(self.ids[i] for i in index), labels=self.labels[index],
                        splits=tuple(self.splits[i] for i in index), images=self.images[index],
                        classes=self.classes)

    def split(self, name: str) -> ImageSet:
        """Only the images of one split (``train``, ``val`` or ``test``)."""
        return self.subset(np.array([s == name for s in self.splits], dtype=bool))


def label_indices(labels: Sequence[str], classes: Sequence[str], source: Path) -> np.ndarray:
    """(N,) int64 class indices; a label outside ``classes`` is an error naming the table."""
    position = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(position))
    if unknown:
        raise DataError(f"{source}: labels {unknown} are not in data.classes {list(classes)}")
    return np.array([position[label] for label in labels], dtype=np.int64)


def load_image_set(folder: Path, classes: Sequence[str], splits: Sequence[str] | None = None,
                   schema: type[PreparedRow | SyntheticRow] = PreparedRow,
                   select: Sequence[int] | np.ndarray | None = None) -> ImageSet:
    """Read ``folder/manifest.csv`` and ``folder/images/<id>.png`` (rows of ``splits``, or all).

    ``schema`` is ``PreparedRow`` for the prepared set, ``SyntheticRow`` for a synthetic set (whose
    rows have no split: ``"synthetic"``). ``select``: positions among those rows to decode, in that
    order (a draw from a large synthetic set decodes only what it draws).
    """
    table = Path(folder) / "manifest.csv"
    rows = [row for row in read_manifest(table, schema)
            if splits is None or getattr(row, "split", None) in splits]
    if not rows:
        raise DataError(f"{table}: no images in splits {list(splits or [])}")
    if select is not None:
        rows = [rows[int(i)] for i in select]
    return ImageSet(ids=tuple(row.id for row in rows),
                    labels=label_indices([row.label for row in rows], classes, table),
                    splits=tuple(getattr(row, "split", "synthetic") for row in rows),
                    images=read_images(Path(folder) / "images", [row.id for row in rows]),
                    classes=tuple(classes))


def read_images(folder: Path, ids: Sequence[str]) -> np.ndarray:
    """(N, H, W) uint8 of ``folder/<id>.png``, decoded straight into one preallocated array: peak
    memory is the set once, not a list of N arrays beside their stacked copy."""
    if not ids:
        return np.zeros((0, 0, 0), np.uint8)
    first = load_png(folder / f"{ids[0]}.png")
    images = np.empty((len(ids), *first.shape), np.uint8)
    images[0] = first
    for index, image_id in enumerate(ids[1:], start=1):
        image = load_png(folder / f"{image_id}.png")
        if image.shape != first.shape:
            raise DataError(f"{folder / f'{image_id}.png'}: {image.shape[1]}x{image.shape[0]} px, but "
                            f"{ids[0]} is {first.shape[1]}x{first.shape[0]}; a set has one image size")
        images[index] = image
    return images


def load_controls(folder: Path, ids: Sequence[str], channels: Sequence[str]) -> np.ndarray:
    """(N, C, H, W) uint8 controls of ``ids``, channels stacked in ``channels`` order."""
    folder = Path(folder)
    return np.stack([np.stack([load_png(folder / channel / f"{image_id}.png") for channel in channels])
                     for image_id in ids])
