"""A picture of the controls next to their images, to check by eye what the ControlNet sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from controlbreast.data.imageio import load_png


def control_preview(prepared: Path, controls: Path, rows: list[dict], channels: tuple[str, ...],
                    per_class: int = 4) -> np.ndarray:
    """(rows, cols) uint8 grid: for the first ``per_class`` train images of each class, the image
    followed by each control channel; one class per band of rows, in sorted class order."""
    tiles = []
    for label in sorted({row["label"] for row in rows}):
        chosen = [r for r in rows if r["label"] == label and r["split"] == "train"][:per_class]
        for row in chosen:
            planes = [load_png(Path(prepared) / "images" / f"{row['id']}.png")]
            planes += [load_png(Path(controls) / c / f"{row['id']}.png") for c in channels]
            tiles.append(np.concatenate(planes, axis=1))
    if not tiles:
        return np.zeros((1, 1), dtype=np.uint8)
    return np.concatenate(tiles, axis=0)
