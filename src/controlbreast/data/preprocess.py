"""Fitting any image to the square the pipeline works at: one function shared by ingest and predict.

A classifier sees at prediction time exactly what ingest prepared for training, so both call this.
"""

from __future__ import annotations

import cv2
import numpy as np


def fit_to_square(pixels: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Resize (H, W) keeping aspect: ``pad`` fits the long side and pads with 0 (centred);
    ``crop`` fits the short side and crops the centre. Returns (size, size), same dtype."""
    height, width = pixels.shape
    scale = size / (max(height, width) if mode == "pad" else min(height, width))
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (new_w, new_h), interpolation=interpolation)
    if mode == "crop":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return resized[top:top + size, left:left + size]
    canvas = np.zeros((size, size), dtype=pixels.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


def fit_mask_to_square(mask: np.ndarray, size: int, mode: str) -> np.ndarray:
    """(size, size) bool of an (H, W) bool ``mask`` fitted like its image, keeping every lesion.

    Area rules: shrinking averages each output pixel's footprint (INTER_AREA) and keeps it when
    any part was covered (> 0), so a 37-pixel lesion on a 1024 px film still shows at 64 px;
    growing copies nearest pixels. A threshold at 0.5 would drop any lesion smaller than an output
    pixel.
    """
    height, width = mask.shape
    scale = size / (max(height, width) if mode == "pad" else min(height, width))
    if scale >= 1:
        return _nearest(mask, size, mode, scale)
    return fit_to_square(mask.astype(np.float32), size, mode) > 0


def _nearest(mask: np.ndarray, size: int, mode: str, scale: float) -> np.ndarray:
    height, width = mask.shape
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = cv2.resize(mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    if mode == "crop":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return resized[top:top + size, left:left + size] > 0
    canvas = np.zeros((size, size), dtype=bool)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized > 0
    return canvas
