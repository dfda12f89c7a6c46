"""Build the gate's tables for a target (the prepared set or a synthetic set), run it, report.

Report (``<paths.metrics>/data_quality[_synthetic].json``)::

    {"target": ..., "passed": bool, "images": N, "class_balance": {"train/benign": n, ...},
     "expectations": [{"expectation", "table", "passed", "observed", "unexpected_count", "column",
                       "offending_ids", "offending_values", "relax_with"}, ...]}

and GX's HTML data docs under ``<paths.reports>/data_quality[_synthetic]/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from controlbreast.config import Config
from controlbreast.data.manifest import existing_manifest
from controlbreast.data.splits import SPLITS
from controlbreast.errors import DataQualityError, ManifestError
from controlbreast.outputs import atomic_folder, write_atomic
from controlbreast.quality.gate import failure_summary, prepared_checks, run_checks, synthetic_checks
from controlbreast.quality.stats import controls_match, cross_split_twins, image_table

SYNTHETIC_REQUIRED = ("id", "label", "control_id")


def manifest_frame(path: Path) -> pd.DataFrame:
    """A manifest CSV as a data frame (any schema: the gate checks its columns), ids and labels kept
    as strings and booleans parsed."""
    return pd.read_csv(existing_manifest(path), dtype={"id": str, "label": str, "group": str, "sha256": str,
                                    "phash": str, "control_id": str, "source_image": str,
                                    "laterality": str}, keep_default_na=False)


def split_tables(table: pd.DataFrame, config: Config) -> dict[str, pd.DataFrame]:
    """``classes`` (count per split × class, zeros included) and ``splits`` (fraction vs target)."""
    counts = table.groupby(["split", "label"]).size()
    classes = pd.DataFrame([{"id": f"{split}/{label}", "count": int(counts.get((split, label), 0))}
                            for split in SPLITS for label in config.data.classes])
    targets = {"train": config.data.split.train, "val": config.data.split.val,
               "test": config.data.split.test}
    fractions = table["split"].value_counts(normalize=True)
    splits = pd.DataFrame([{"id": split, "fraction": float(fractions.get(split, 0.0)),
                            "target": targets[split],
                            "deviation": abs(float(fractions.get(split, 0.0)) - targets[split])}
                           for split in SPLITS])
    return {"classes": classes, "splits": splits}


def prepared_tables(config: Config) -> dict[str, pd.DataFrame]:
    """The gate's tables for ``paths.prepared``."""
    folder = Path(config.paths.prepared)
    manifest = manifest_frame(folder / "manifest.csv")
    images = image_table(folder, manifest, config.quality)
    images["is_lesion"] = images["source_label"].isin(config.data.lesion_labels)
    images["is_mammogram"] = images["modality"] == "mammography"
    images["cross_split_twin"] = cross_split_twins(images, config.quality.near_duplicate_bits, folder,
                                                   config.quality.near_duplicate_similarity)
    images["controls_match"] = controls_match(config.paths.controls, list(images["id"]),
                                              config.controls.channels, config.data.image_size)
    return {"manifest": manifest, "images": images, **split_tables(images, config)}


def synthetic_tables(config: Config) -> dict[str, pd.DataFrame]:
    """The gate's table for ``paths.synthetic``: each image with the split of its control."""
    folder = Path(config.paths.synthetic)
    manifest = manifest_frame(folder / "manifest.csv")
    missing = [c for c in SYNTHETIC_REQUIRED if c not in manifest.columns]
    if missing:
        raise ManifestError(f"{folder / 'manifest.csv'}: missing columns {missing}")
    real = manifest_frame(Path(config.paths.prepared) / "manifest.csv")
    split_of = dict(zip(real["id"], real["split"], strict=True))
    images = image_table(folder, manifest, config.quality)
    images["control_split"] = [split_of.get(c, "missing") for c in images["control_id"]]
    return {"images": images}


def source_files(manifest: pd.DataFrame | None) -> dict[str, str]:
    """Prepared id -> the source file it was made from (a mammogram's patches share their
    image's), for naming the file to fix beside an id; empty without a ``source_path`` column."""
    if manifest is None or "source_path" not in manifest.columns:
        return {}
    return dict(zip(manifest["id"], manifest["source_path"], strict=True))


def validate(config: Config, target: str) -> dict:
    """Run the gate on ``target`` ("prepared" or "synthetic"); write the report and data docs.

    Raises ``DataQualityError`` (after writing both) when an expectation fails.
    """
    tables = prepared_tables(config) if target == "prepared" else synthetic_tables(config)
    checks = (prepared_checks(config, bool(tables["images"]["is_mammogram"].any())) if target == "prepared"
              else synthetic_checks(config))
    suffix = "" if target == "prepared" else "_synthetic"
    with atomic_folder(Path(config.paths.reports) / f"data_quality{suffix}") as docs:
        outcomes = run_checks(tables, checks, f"{target}", docs, config.quality.max_listed_ids)
    images = tables["images"]
    balance = images.groupby(["split", "label"]).size() if "split" in images else \
        images.groupby("label").size()
    report = {"target": target, "passed": all(o["passed"] for o in outcomes), "images": len(images),
              "class_balance": {"/".join(k) if isinstance(k, tuple) else k: int(v)
                                for k, v in balance.items()},
              "expectations": outcomes}
    write_atomic(Path(config.paths.metrics) / f"data_quality{suffix}.json",
                 json.dumps(report, indent=2).encode())
    if not report["passed"]:
        sources = source_files(tables.get("manifest"))
        raise DataQualityError(f"data-quality gate failed on {target}:\n{failure_summary(outcomes, sources)}")
    return report

