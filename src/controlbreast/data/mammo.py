"""Mammograms as the pipeline needs them: the breast cropped out of its film and facing one way.

A screening film is mostly black background with the breast against one edge (the chest wall),
left breasts facing one way and right breasts the other, and often burned-in labels in a corner.
A classifier that sees the whole film squeezed to a thumbnail learns the background; so ingest
crops to the breast (the largest bright component, found on a small copy), blanks what lies outside
it (labels), and mirrors every film so the chest wall is on the left (the nipple points right).

The side is found from the tissue, not from a tag: DICOM ``ImageLaterality`` says which breast it
is, not how it was displayed, and both conventions exist in public sets. The laterality recorded is
the tag (or CSV column) when there is one, else the one the standard display implies (a left
breast shows its chest wall on the left, a right breast on the right).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from controlbreast.data.config import MammographyConfig

_WORK_SIDE = 256  # the long side of the copy the breast is found on


@dataclass(frozen=True)
class BreastView:
    """Where the breast was cut from its film and how it was turned.

    ``box`` is (top, left, height, width) in source pixels; ``flipped`` means the crop was mirrored
    left-right (the chest wall was on the right); ``laterality`` is ``L`` or ``R``.
    """

    box: tuple[int, int, int, int]
    flipped: bool
    laterality: str


def _small(image: np.ndarray, bits: int) -> np.ndarray:
    """(h, w) uint8 copy of (H, W) ``image`` with its long side at most ``_WORK_SIDE``."""
    scale = min(1.0, _WORK_SIDE / max(image.shape))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    top = float(2**bits - 1)
    return np.clip(np.rint(small.astype(np.float32) * np.float32(255.0 / top)), 0, 255).astype(np.uint8)


def breast_mask(image: np.ndarray, bits: int, tissue_level: float) -> np.ndarray:
    """(h, w) bool mask of the breast on a small copy of (H, W) ``image``.

    Threshold: Otsu's, or ``tissue_level`` when lower (Otsu splits dense from fatty tissue on a
    film with little background); then the largest 8-connected component with its holes filled,
    so labels and markers (separate components) are left out.
    """
    small = cv2.GaussianBlur(_small(image, bits), (5, 5), 0)
    otsu, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = min(otsu, tissue_level * 255.0)
    found = (small > level).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    if count <= 1:
        return np.ones(small.shape, dtype=bool)  # nothing bright: keep the whole film
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(mask, contours, -1, 1, thickness=cv2.FILLED)
    return mask.astype(bool)


def crop_box(mask: np.ndarray, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) in the (H, W) ``shape`` of the bounding box of a small ``mask``,
    widened by ``margin`` of its size on every side and clipped to the film."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    sy, sx = shape[0] / mask.shape[0], shape[1] / mask.shape[1]
    top, bottom = rows[0] * sy, (rows[-1] + 1) * sy
    left, right = cols[0] * sx, (cols[-1] + 1) * sx
    pad_y, pad_x = margin * (bottom - top), margin * (right - left)
    top, left = max(0, int(np.floor(top - pad_y))), max(0, int(np.floor(left - pad_x)))
    bottom = min(shape[0], int(np.ceil(bottom + pad_y)))
    right = min(shape[1], int(np.ceil(right + pad_x)))
    return top, left, bottom - top, right - left


def chest_wall_on_right(mask: np.ndarray) -> bool:
    """Whether the tissue leans right: the chest wall is the side where the breast is widest
    (the film edge it is pressed against), so more tissue lies in that half."""
    columns = mask.sum(axis=0).astype(np.float64)
    half = columns.size // 2
    return float(columns[columns.size - half:].sum()) > float(columns[:half].sum())


def orient(image: np.ndarray, mask: np.ndarray | None, bits: int, cfg: MammographyConfig,
           laterality: str | None = None) -> tuple[np.ndarray, np.ndarray | None, BreastView]:
    """Crop (H, W) ``image`` (and its lesion ``mask``) to the breast, blank what lies outside it,
    and mirror both so the chest wall is on the left. Returns (h, w) arrays of the input dtypes
    and the ``BreastView`` that maps them back."""
    small = breast_mask(image, bits, cfg.tissue_level)
    top, left, height, width = crop_box(small, image.shape, cfg.crop_margin)
    inside = cv2.resize(small.astype(np.uint8), (image.shape[1], image.shape[0]),
                        interpolation=cv2.INTER_NEAREST)[top:top + height, left:left + width]
    grow = max(3, round(0.01 * max(height, width))) | 1
    inside = cv2.dilate(inside, np.ones((grow, grow), np.uint8)).astype(bool)
    cropped = np.where(inside, image[top:top + height, left:left + width], 0).astype(image.dtype)
    lesion = None if mask is None else mask[top:top + height, left:left + width]
    flipped = chest_wall_on_right(small)
    if flipped:
        cropped = np.ascontiguousarray(cropped[:, ::-1])
        lesion = None if lesion is None else np.ascontiguousarray(lesion[:, ::-1])
    side = laterality or ("R" if flipped else "L")
    return cropped, lesion, BreastView((top, left, height, width), flipped, side)


def breast_region(image: np.ndarray, bits: int, cfg: MammographyConfig) -> np.ndarray:
    """(H, W) bool breast mask of an oriented crop at full size (for sampling patches)."""
    small = breast_mask(image, bits, cfg.tissue_level).astype(np.uint8)
    return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
