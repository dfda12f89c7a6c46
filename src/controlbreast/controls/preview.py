"""A picture of the controls next to their images, to check by eye what the ControlNet sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controlbreast.data.imageio import load_png
from controlbreast.data.manifest import ControlRow


def control_preview(prepared: Path, controls: Path, rows: list[ControlRow], channels: tuple[str, ...],
                    per_class: int = 4) -> np.ndarray:
    """(classes * S, per_class * (1 + C) * S) uint8 grid: one row per class (sorted), holding the
    first ``per_class`` train images, each followed by its C control channels; gaps stay black."""
    bands = []
    for label in sorted({row.label for row in rows}):
        chosen = [r for r in rows if r.label == label and r.split == "train"][:per_class]
        tiles = [np.concatenate([load_png(Path(prepared) / "images" / f"{r.id}.png")]
                                + [load_png(Path(controls) / c / f"{r.id}.png") for c in channels],
                                axis=1) for r in chosen]
        bands.append(tiles)
    if not any(bands):
        return np.zeros((1, 1), dtype=np.uint8)
    blank = np.zeros_like(next(tile for band in bands for tile in band))
    return np.concatenate([np.concatenate(band + [blank] * (per_class - len(band)), axis=1)
                           for band in bands], axis=0)
