"""External test sets: another hospital's (or scanner's) images, never trained or tuned on.

A gain measured on one site's test split may not survive off-site, so each set of
``evaluate.external`` is ingested by the very code that prepares the training data (any source:
``phantom`` with its own seed and scanner, ``busi``, ``csv`` with DICOM inside) into
``<paths.external>/<name>/``, every image in the ``test`` split (no split is drawn: the set is
test-only). The same data-quality checks that gate the training images gate it, and every image is
compared with the prepared training and validation images by perceptual hash: a near-duplicate of
a training image is not an external test, so it is listed in ``near_duplicates.csv`` and left out
of every external figure.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from controlbreast.config import Config
from controlbreast.data.check import data_modality, external_config, external_problems, list_inputs
from controlbreast.data.ingest import ingest, rejection_counts, split_counts
from controlbreast.data.manifest import PreparedRow, manifest_bytes, read_manifest
from controlbreast.data.splits import near_duplicate_pairs
from controlbreast.errors import ConfigError, DataQualityError
from controlbreast.evaluation.config import ExternalSetConfig
from controlbreast.outputs import csv_bytes, read_csv
from controlbreast.quality.gate import failure_summary, record_checks, run_checks
from controlbreast.quality.stats import image_table
from controlbreast.quality.validate import manifest_frame, source_files

DUPLICATES = "near_duplicates.csv"
DUPLICATE_COLUMNS = ["id", "training_id", "training_split", "bits"]


def near_duplicates_of_training(folder: Path, prepared: Path, max_bits: int) -> list[dict]:
    """External images within ``max_bits`` pHash bits of a prepared train or val image."""
    external = read_manifest(Path(folder) / "manifest.csv", PreparedRow)
    seen = [row for row in read_manifest(Path(prepared) / "manifest.csv", PreparedRow)
            if row.split in ("train", "val")]
    hashes = [int(row.phash, 16) for row in [*external, *seen]]
    found = {}
    for i, j in near_duplicate_pairs(hashes, max_bits):
        if i < len(external) <= j:
            bits = (hashes[i] ^ hashes[j]).bit_count()
            other = seen[j - len(external)]
            if external[i].id not in found or bits < found[external[i].id]["bits"]:
                found[external[i].id] = {"id": external[i].id, "training_id": other.id,
                                         "training_split": other.split, "bits": bits}
    return sorted(found.values(), key=lambda row: row["id"])


def gate(config: Config, folder: Path) -> list[dict]:
    """The data-quality checks shared by every image set (files, labels, size, mode, exposure,
    exact copies); raises ``DataQualityError`` naming the set when one fails."""
    manifest = manifest_frame(Path(folder) / "manifest.csv")
    tables = {"images": image_table(folder, manifest, config.quality)}
    outcomes = run_checks(tables, record_checks(config), Path(folder).name, None,
                          config.quality.max_listed_ids)
    if not all(o["passed"] for o in outcomes):
        raise DataQualityError(f"data-quality gate failed on external set {folder}:\n"
                               f"{failure_summary(outcomes, source_files(manifest))}")
    return outcomes


def training_modality(config: Config) -> str | None:
    """The modality most prepared images have; before ingest, what the check lists."""
    manifest = Path(config.paths.prepared) / "manifest.csv"
    if not manifest.is_file():
        return data_modality(list_inputs(config.data, config.phantom))
    return Counter(row.modality for row in read_manifest(manifest, PreparedRow)).most_common(1)[0][0]


def ingest_external(config: Config, external: ExternalSetConfig) -> dict:
    """Ingest one external set test-only, gate it, list its near-duplicates of the training data.
    A set of another modality than the training data's, or of none of its classes, is a
    ``ConfigError`` before any image is read (90 ultrasound frames are no mammography test)."""
    problems = external_problems(config, external, training_modality(config))
    if problems:
        raise ConfigError("\n".join(problems))
    own = external_config(config, external)
    rows, rejected = ingest(own, every_class=False)  # a site may lack a class (BUS-BRA: no normal)
    folder = Path(own.paths.prepared)
    rows = [{**row, "split": "test"} for row in rows]
    (folder / "manifest.csv").write_bytes(manifest_bytes(rows, PreparedRow))
    outcomes = gate(own, folder)
    duplicates = near_duplicates_of_training(folder, config.paths.prepared, config.data.near_duplicate_bits)
    (folder / DUPLICATES).write_bytes(csv_bytes(duplicates, DUPLICATE_COLUMNS))
    return {"source": external.source, "images": len(rows), "classes": split_counts(rows),
            "rejected": rejection_counts(rejected), "expectations_passed": len(outcomes),
            "near_duplicates_of_training": len(duplicates),
            "near_duplicate_ids": [row["id"] for row in duplicates][:20]}


def excluded_ids(folder: Path) -> set[str]:
    """The ids ``ingest_external`` listed as near-duplicates of training images."""
    path = Path(folder) / DUPLICATES
    return {row["id"] for row in read_csv(path)} if path.is_file() else set()
