"""The prepared manifest's rows (``data/manifest.py``: PreparedRow) from the prepared images.

Groups merge near-duplicates (``data/duplicates.py``) and splits are assigned per source image
(``data/splits.py``); a mammogram's patches inherit its group and split, one row per written file.
"""

from __future__ import annotations

from collections.abc import Callable

from controlbreast.data.config import DataConfig
from controlbreast.data.duplicates import near_duplicates, patients_of
from controlbreast.data.prepare import Prepared
from controlbreast.data.splits import assign_splits, linked_groups


def _view_columns(p: Prepared) -> dict:
    top, left, height, width = p.view.box if p.view else (0, 0, *p.orig_shape)
    return {"modality": p.modality, "laterality": p.view.laterality if p.view else "",
            "flipped": bool(p.view and p.view.flipped), "crop_top": top, "crop_left": left,
            "crop_height": height, "crop_width": width, "pixel_spacing_mm": p.spacing_mm or 0.0}


def _written_rows(p: Prepared, label: str, cfg: DataConfig) -> list[dict]:
    """One row per file of ``p``: a background patch is labelled ``patches.background_label``."""
    rows = []
    for w in p.written:
        background = w.kind == "background"
        rows.append({"id": w.name, "label": cfg.patches.background_label if background else label,
                     "source_label": cfg.patches.background_label if background
                     else p.candidate.source_label,
                     "has_mask": w.has_mask, "source_image": p.image_id, "patch_kind": w.kind,
                     "patch_top": w.box[0], "patch_left": w.box[1], "patch_side": w.box[2]})
    return rows


def manifest_rows(good: list[Prepared], cfg: DataConfig, seed: int,
                  rename: Callable[[str], str] = str) -> list[dict]:
    """Manifest rows (ids in source-path order), with merged groups and assigned splits.
    ``rename`` maps a source path to what the manifest shows (see ``data.anonymise_paths``).
    Groups and splits are decided per source image; its patches inherit them."""
    patients = patients_of(good)
    own_groups = [patient or p.image_id for patient, p in zip(patients, good, strict=True)]
    groups = linked_groups(own_groups, near_duplicates(good, cfg)[1], [bool(patient) for patient in patients])
    labels = [cfg.to_class(p.candidate.source_label) for p in good]
    fractions = (cfg.split.train, cfg.split.val, cfg.split.test)
    splits = assign_splits(groups, labels, fractions, seed)
    rows = []
    for p, label, group, split in zip(good, labels, groups, splits, strict=True):
        shared = {"split": split, "group": group, "source_path": rename(p.candidate.source_path),
                  "orig_height": p.orig_shape[0], "orig_width": p.orig_shape[1],
                  "bit_depth": p.bit_depth, "sha256": p.sha256, "phash": f"{p.phash:016x}",
                  **_view_columns(p)}
        rows += [{**row, **shared} for row in _written_rows(p, label, cfg)]
    return rows

