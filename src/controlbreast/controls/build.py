"""The controls stage: one control image per prepared image, and a loader that stacks channels.

Output layout (``paths.controls``)::

    edges/<id>.png   (S, S) uint8 Canny map (0/255)      when controls.kind has ``edges``
    mask/<id>.png    (S, S) uint8 lesion mask (0/255)   when controls.kind has ``mask``
    controls.csv     id, label, split, channels
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from controlbreast.config import Config
from controlbreast.controls.edges import canny_edges
from controlbreast.data.imageio import encode_png, load_png
from controlbreast.data.manifest import ControlRow, PreparedRow, manifest_bytes, read_manifest
from controlbreast.errors import ControlsError
from controlbreast.outputs import atomic_folder


def _mask_of(prepared: Path, row: PreparedRow, lesion_labels: tuple[str, ...]) -> np.ndarray:
    """The stored (S, S) mask; images without one are empty only if their label has no lesion."""
    if row.has_mask:
        return load_png(prepared / "masks" / f"{row.id}.png")
    if row.source_label in lesion_labels:
        raise ControlsError(f"{row.id} ({row.source_path}): label {row.source_label!r} "
                            "has a lesion but the image has no mask; use controls.kind: edges")
    size = load_png(prepared / "images" / f"{row.id}.png").shape
    return np.zeros(size, dtype=np.uint8)


def make_controls(config: Config) -> list[ControlRow]:
    """Write the configured control channels for every prepared image; returns the table rows."""
    cfg, prepared = config.controls, Path(config.paths.prepared)
    manifest = read_manifest(prepared / "manifest.csv", PreparedRow)
    rows = []
    with atomic_folder(Path(config.paths.controls)) as build:
        for channel in cfg.channels:
            (build / channel).mkdir()
        for row in tqdm(manifest, desc="controls", unit="img"):
            if "edges" in cfg.channels:
                edges = canny_edges(load_png(prepared / "images" / f"{row.id}.png"), cfg)
                (build / "edges" / f"{row.id}.png").write_bytes(encode_png(edges))
            if "mask" in cfg.channels:
                mask = _mask_of(prepared, row, config.data.lesion_labels)
                (build / "mask" / f"{row.id}.png").write_bytes(encode_png(mask))
            rows.append(ControlRow(id=row.id, label=row.label, split=row.split, channels=cfg.kind))
        (build / "controls.csv").write_bytes(manifest_bytes(rows, ControlRow))
    return rows

