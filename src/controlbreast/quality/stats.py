"""Per-image statistics, computed once, that the data-quality expectations run over.

One row per manifest row, with what is really on disk (not what the manifest claims): whether the
file reads, its size, mode and bit depth, intensity statistics, mask coverage and size, a hash of
the decoded pixels and a perceptual hash. Cross-row facts (a near-duplicate in another split, a
synthetic image's control split) are columns too, so each expectation is a plain column check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from controlbreast.data.splits import (
    identity_thumbnail,
    near_duplicate_pairs,
    perceptual_hash,
    similarity,
)
from controlbreast.quality.config import QualityConfig

BIT_DEPTH = {"1": 1, "L": 8, "P": 8, "RGB": 8, "I;16": 16, "I": 32, "F": 32}


def _read(path: Path) -> tuple[np.ndarray | None, str]:
    """(pixels, PIL mode), or (None, "") when the file is missing or does not decode."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image), image.mode
    except (OSError, SyntaxError, ValueError):
        return None, ""


def _mask_stats(path: Path, shape: tuple[int, ...]) -> dict:
    mask, _ = _read(path)
    if mask is None:
        return {"mask_readable": False, "mask_matches_image": False, "mask_coverage": np.nan}
    return {"mask_readable": True, "mask_matches_image": mask.shape == shape,
            "mask_coverage": float((mask > 0).mean())}


def one_image(folder: Path, row: dict, cfg: QualityConfig) -> dict:
    """Statistics of one image (and its mask if the row says it has one)."""
    pixels, mode = _read(folder / "images" / f"{row['id']}.png")
    if pixels is None:
        return {"readable": False}
    stats = {
        "readable": True, "height": pixels.shape[0], "width": pixels.shape[1],
        "mode": mode, "file_bit_depth": BIT_DEPTH.get(mode, 0),
        "mean_intensity": float(pixels.mean()) / 255.0, "std_intensity": float(pixels.std()) / 255.0,
        "black_fraction": float((pixels <= cfg.black_level).mean()),
        "saturated_fraction": float((pixels >= cfg.saturated_level).mean()),
        "pixel_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "pixel_phash": f"{perceptual_hash(pixels):016x}" if pixels.ndim == 2 else "",
    }
    if str(row.get("has_mask")) == "True":
        stats |= _mask_stats(folder / "masks" / f"{row['id']}.png", pixels.shape)
    return stats


def controls_match(folder: Path, ids: list[str], channels: tuple[str, ...],
                   size: int) -> list[bool]:
    """Whether each id has every control channel on disk, readable, of shape (size, size)."""
    def ok(image_id: str) -> bool:
        planes = [_read(Path(folder) / channel / f"{image_id}.png")[0] for channel in channels]
        return all(p is not None and p.shape == (size, size) for p in planes)

    return [ok(image_id) for image_id in ids]


def cross_split_twins(table: pd.DataFrame, max_bits: int, folder: Path | None = None,
                      min_similarity: float = -1.0) -> pd.Series:
    """For each row, the id of a near-duplicate in another split (None if there is none).

    ``pixel_phash`` is hex text: 64-bit hashes do not survive pandas' numeric columns. With
    ``folder``, a hash match counts only when the two images' pixels agree too (ingest's rule,
    ``splits.similarity`` at least ``min_similarity``): mostly black mammograms of different women
    match by hash alone.
    """
    twins = pd.Series([None] * len(table), index=table.index, dtype=object)
    texts = table["pixel_phash"].fillna("").to_numpy()
    usable = np.flatnonzero(texts != "")
    pairs = near_duplicate_pairs([int(texts[i], 16) for i in usable], max_bits)
    ids, splits = table["id"].to_numpy(), table["split"].to_numpy()
    for first, second in pairs:
        a, b = usable[first], usable[second]
        if splits[a] != splits[b] and (folder is None or _agree(folder, ids[a], ids[b], min_similarity)):
            twins.iloc[a], twins.iloc[b] = ids[b], ids[a]
    return twins


def _agree(folder: Path, first: str, second: str, min_similarity: float) -> bool:
    thumbs = [_read(Path(folder) / "images" / f"{name}.png")[0] for name in (first, second)]
    if any(t is None or t.ndim != 2 for t in thumbs):
        return True
    return similarity(*(identity_thumbnail(t) for t in thumbs)) >= min_similarity


def image_table(folder: Path, manifest: pd.DataFrame, cfg: QualityConfig) -> pd.DataFrame:
    """The manifest joined with per-image statistics: one row per manifest row."""
    rows = manifest.to_dict("records")
    stats = pd.DataFrame([one_image(folder, row, cfg)
                          for row in tqdm(rows, desc="image statistics", unit="img")])
    return pd.concat([manifest.reset_index(drop=True), stats], axis=1)
