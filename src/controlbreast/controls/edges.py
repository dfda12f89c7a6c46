"""Canny edge maps, the default ControlNet control.

Ultrasound speckle makes raw Canny fire everywhere, so the image is optionally blurred first, and
thresholds either come from params or from the image's median intensity (the common automatic
rule, ``(1 - sigma) * median`` and ``(1 + sigma) * median``).
"""

from __future__ import annotations

import cv2
import numpy as np

from controlbreast.controls.config import ControlsConfig


def canny_thresholds(image: np.ndarray, cfg: ControlsConfig) -> tuple[int, int]:
    """(low, high) hysteresis thresholds for a (H, W) uint8 image."""
    if cfg.canny_low is not None:
        return cfg.canny_low, cfg.canny_high
    median = float(np.median(image))
    low = int(max(0.0, (1.0 - cfg.canny_sigma) * median))
    high = int(min(255.0, (1.0 + cfg.canny_sigma) * median))
    return low, max(high, low + 1)


def canny_edges(image: np.ndarray, cfg: ControlsConfig) -> np.ndarray:
    """(H, W) uint8 edge map, 255 on edges and 0 elsewhere, of a (H, W) uint8 image."""
    smoothed = cv2.GaussianBlur(image, (cfg.blur_kernel,) * 2, 0) if cfg.blur_kernel else image
    low, high = canny_thresholds(smoothed, cfg)
    return cv2.Canny(smoothed, low, high, L2gradient=True)
