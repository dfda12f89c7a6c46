"""Lesion-centred and background patches of a mammogram: where lesions span tens of pixels.

A lesion covers well under 1% of a film, so a whole film squeezed to 64 px leaves it a few pixels.
Mammography work classifies patches instead: one centred on each lesion (with a little jitter, so
the lesion is not always dead centre) and some from normal tissue inside the breast, away from
every lesion. Each patch covers a set physical size (``mm_per_px`` x output size) when the pixel
spacing is known, else a set fraction of the breast's width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from controlbreast.data.config import PatchConfig


@dataclass(frozen=True)
class PatchBox:
    """A square window of an oriented breast crop: ``kind`` ``lesion`` or ``background``, its
    ``index`` within its kind, and (top, left, side) in the crop's pixels (it may reach past the
    edges, which read as black)."""

    kind: str
    index: int
    top: int
    left: int
    side: int

    @property
    def suffix(self) -> str:
        """What the patch adds to its image's id: ``-l0``, ``-b1``..."""
        return f"-{self.kind[0]}{self.index}"


SPACING_UNKNOWN = ("pixel spacing unknown, and data.patches.mm_per_px needs it: set data.pixel_spacing_mm "
                   "(e.g. 0.07), or give the manifest a pixel_spacing_mm column, or set "
                   "data.patches.mm_per_px: null to size patches by data.patches.breast_fraction")


def patch_side(cfg: PatchConfig, size: int, spacing_mm: float | None, breast_width: int) -> int:
    """Side in source pixels of a patch written at ``size`` px: ``size * mm_per_px / spacing``, or
    with ``mm_per_px`` null ``breast_fraction`` of the breast's width (at least 8 px). A spacing
    that ``mm_per_px`` needs and nobody gave is a ``ValueError`` (``SPACING_UNKNOWN``), never
    another size: patches of 13 to 51 mm on one set would differ in what they show."""
    if cfg.mm_per_px is None:
        return max(8, round(cfg.breast_fraction * breast_width))
    if not spacing_mm:
        raise ValueError(SPACING_UNKNOWN)
    return max(8, round(size * cfg.mm_per_px / spacing_mm))


def _box(kind: str, index: int, cy: float, cx: float, side: int) -> PatchBox:
    return PatchBox(kind, index, round(float(cy) - side / 2), round(float(cx) - side / 2), side)


def lesion_boxes(mask: np.ndarray, side: int, jitter: float, rng: np.random.Generator) -> list[PatchBox]:
    """One box per 8-connected lesion of (H, W) bool ``mask``, centred on its bounding box's
    centre plus a uniform shift of up to ``jitter * side``, never so far that the lesion's centre
    leaves the middle half of the patch."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = []
    shift = min(jitter, 0.25) * side
    for index, (x, y, w, h, _) in enumerate(stats[1:]):
        dy, dx = rng.uniform(-shift, shift, 2)
        boxes.append(_box("lesion", index, y + h / 2 + dy, x + w / 2 + dx, side))
    return boxes


def background_boxes(breast: np.ndarray, mask: np.ndarray | None, side: int, count: int,
                     rng: np.random.Generator) -> list[PatchBox]:
    """Up to ``count`` boxes of tissue: centres inside (H, W) ``breast`` (whole patch inside when
    the breast is big enough) whose window touches no lesion pixel of ``mask``."""
    kernel = np.ones((side, side), np.uint8)
    anchor = (side // 2, side // 2)
    clear = np.ones(breast.shape, np.uint8)
    if mask is not None and mask.any():
        clear = (cv2.dilate(mask.astype(np.uint8), kernel, anchor=anchor) == 0).astype(np.uint8)
    allowed = cv2.erode(breast.astype(np.uint8), kernel, anchor=anchor, borderValue=0) & clear
    if not allowed.any():  # a breast smaller than a patch: centres inside it will do
        allowed = breast.astype(np.uint8) & clear
    ys, xs = np.nonzero(allowed)
    if ys.size == 0:
        return []
    picks = rng.choice(ys.size, size=min(count, ys.size), replace=False)
    # the window of centre (y, x) is rows y - side // 2 .. + side: what the anchor above tested
    return [PatchBox("background", i, int(ys[p]) - side // 2, int(xs[p]) - side // 2, side)
            for i, p in enumerate(sorted(picks))]


def cut(pixels: np.ndarray, box: PatchBox) -> np.ndarray:
    """The (side, side) window of (H, W) ``pixels`` at ``box``, zero outside the image."""
    out = np.zeros((box.side, box.side), dtype=pixels.dtype)
    top, left = max(0, box.top), max(0, box.left)
    bottom = min(pixels.shape[0], box.top + box.side)
    right = min(pixels.shape[1], box.left + box.side)
    if bottom > top and right > left:
        out[top - box.top:bottom - box.top, left - box.left:right - box.left] = \
            pixels[top:bottom, left:right]
    return out


def plan_patches(breast: np.ndarray, mask: np.ndarray | None, side: int, cfg: PatchConfig,
                 seed: int) -> list[PatchBox]:
    """Lesion boxes then background boxes of one oriented crop; the same ``seed`` gives the
    same boxes (the caller keys it by the image, so other images never change them)."""
    rng = np.random.default_rng(seed)
    lesions = lesion_boxes(mask, side, cfg.jitter, rng) if mask is not None and mask.any() else []
    return lesions + background_boxes(breast, mask, side, cfg.background, rng)
