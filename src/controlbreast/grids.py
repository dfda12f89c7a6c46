"""Image grids to look at: rows of samples with their controls and real neighbours."""

from __future__ import annotations

import numpy as np


def side_by_side(*columns: np.ndarray, gap: int = 2) -> np.ndarray:
    """(N * (H + gap), k * (W + gap)) uint8 grid: row i holds image i of each (N, H, W) column.

    A (N, C, H, W) column is shown channel after channel. Gaps are mid-grey so black images and
    black padding stay distinguishable.
    """
    tiles = [column[:, None] if column.ndim == 3 else column for column in columns]
    count, height, width = len(tiles[0]), tiles[0].shape[-2], tiles[0].shape[-1]
    per_row = sum(column.shape[1] for column in tiles)
    grid = np.full((count * (height + gap), per_row * (width + gap)), 128, dtype=np.uint8)
    for row in range(count):
        cells = [channel for column in tiles for channel in column[row]]
        for col, cell in enumerate(cells):
            top, left = row * (height + gap), col * (width + gap)
            grid[top:top + height, left:left + width] = cell
    return grid
