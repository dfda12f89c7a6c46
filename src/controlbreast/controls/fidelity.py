"""How well an image follows its control: edge F1 with a distance tolerance.

The image's own Canny edges (same settings as the controls stage) are compared with the control's
edges; for a mask control, with the mask's outline. Precision is the fraction of the image's edge
pixels within ``tolerance`` pixels of a control edge, recall the fraction of control edge pixels
within ``tolerance`` of an image edge (the usual boundary F-measure of BSDS-style evaluation).
Reported beside the same figure against shuffled controls, it says whether a generator follows its
control or merely draws plausible edges anywhere.

For a mask control there is also a region measure, ``mask_dice``: lesions in breast ultrasound are
hypoechoic, so the image's dark region (Otsu's threshold after a blur) is compared with the mask by
Dice. Without a trained segmenter this is a proxy (dark fat layers and shadows count too), which is
why it is only read beside the same figure for shuffled masks.
"""

from __future__ import annotations

import cv2
import numpy as np

from controlbreast.controls.config import ControlsConfig
from controlbreast.controls.edges import canny_edges


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0/255 boundary of a (H, W) 0/255 mask."""
    binary = (mask > 127).astype(np.uint8)
    return (binary - cv2.erode(binary, np.ones((3, 3), np.uint8))) * 255


def edge_f1(image_edges: np.ndarray, control_edges: np.ndarray, tolerance: int = 2) -> float:
    """Boundary F1 of two (H, W) 0/255 edge maps; 1.0 when both are empty, 0.0 when one is."""
    found, wanted = image_edges > 0, control_edges > 0
    if not found.any() and not wanted.any():
        return 1.0
    if not found.any() or not wanted.any():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1,) * 2)
    near_wanted = cv2.dilate(wanted.astype(np.uint8), kernel) > 0
    near_found = cv2.dilate(found.astype(np.uint8), kernel) > 0
    precision = float((found & near_wanted).sum() / found.sum())
    recall = float((wanted & near_found).sum() / wanted.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def control_edges(control: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """(H, W) 0/255 edges of a (C, H, W) uint8 control: its edge channel, else the mask outline."""
    if "edges" in channels:
        return control[channels.index("edges")]
    return outline(control[channels.index("mask")])


def control_f1(images: np.ndarray, controls: np.ndarray, channels: tuple[str, ...],
               cfg: ControlsConfig, tolerance: int = 2) -> np.ndarray:
    """(N,) edge F1 of each image (N, H, W) uint8 against its control (N, C, H, W) uint8."""
    return np.array([edge_f1(canny_edges(image, cfg), control_edges(control, channels), tolerance)
                     for image, control in zip(images, controls, strict=True)])


def shuffled(count: int, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(count)`` with no fixed point: each image meets another's control."""
    if count < 2:
        raise ValueError("shuffled controls need at least two images")
    order = np.random.default_rng(seed).permutation(count)
    return np.roll(order, 1)[np.argsort(order)]


def shuffled_within_class(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(len(labels))`` that gives each position another of its own class
    (``shuffled`` within each class; a class of one keeps its only member)."""
    order = np.arange(len(labels))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) > 1:
            order[members] = members[shuffled(len(members), seed)]
    return order


def versus_shuffled(matched: np.ndarray, mismatched: np.ndarray) -> dict[str, float]:
    """Mean score with the own control (or mask), with a shuffled one, and their ratio."""
    return {"matched": float(matched.mean()), "shuffled": float(mismatched.mean()),
            "ratio": float(matched.mean() / max(mismatched.mean(), 1e-6))}


def dark_region(image: np.ndarray, blur: int = 5) -> np.ndarray:
    """(H, W) bool: the hypoechoic part of a (H, W) uint8 image, by Otsu's threshold after a blur."""
    smooth = cv2.GaussianBlur(image, (blur, blur), 0)
    _, dark = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return dark > 0


def dice(found: np.ndarray, wanted: np.ndarray) -> float:
    """Dice overlap of two (H, W) bool masks; 1.0 when both are empty."""
    total = int(found.sum()) + int(wanted.sum())
    return 1.0 if total == 0 else 2.0 * float((found & wanted).sum()) / total


def mask_dice(images: np.ndarray, controls: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """(N,) Dice of each image's (N, H, W) dark region with the mask channel of its control
    (N, C, H, W) uint8; NaN where the mask is empty (a normal image has no lesion to place)."""
    masks = controls[:, channels.index("mask")] > 127
    return np.array([dice(dark_region(image), mask) if mask.any() else np.nan
                     for image, mask in zip(images, masks, strict=True)])
