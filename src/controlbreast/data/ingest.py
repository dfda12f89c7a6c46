"""Ingest: any source → resized grayscale images, masks and a split manifest in one folder.

Output layout (``paths.prepared``)::

    images/<id>.png     (S, S) uint8 grayscale, S = data.image_size
    masks/<id>.png      (S, S) uint8 0/255 lesion mask, for images whose source has one
    manifest.csv        one row per image (``data/manifest.py``: PreparedRow)

A mammogram (``data.modality``) is first cropped to the breast and mirrored chest wall left
(``data/mammo.py``); with ``data.patches.enabled`` it becomes lesion-centred and background patches
``<id>-l<k>`` / ``<id>-b<k>`` (``data/patches.py``) that share its group and split.
    rejected.csv        inputs left out (source_path, problem): bad inputs under
                        data.on_error=skip, labels mapped to no class, exact duplicates (one copy
                        kept, or none if their labels conflict) and near-duplicates whose labels
                        conflict (data.near_duplicate_conflicts); counted per reason
                        (records.REASONS) in metrics/ingest.json

Workers write each image into a folder built beside the destination, swapped in only at the end,
so an interrupted or failed run leaves the previous output (or nothing), never a half-written set.
Ids follow source-path order and keep gaps where inputs were left out, so an id never changes
because another file was bad. Same params and inputs give byte-identical files.

This module runs the steps: listing (``data/discovery.py``), preparing each input
(``data/prepare.py``), resolving duplicates (``data/duplicates.py``) and the manifest rows
(``data/manifest_rows.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from controlbreast.config import Config
from controlbreast.data.config import DataConfig
from controlbreast.data.discovery import check_classes, discover, exclude_unmapped, source_name
from controlbreast.data.duplicates import (
    drop_exact_duplicates,
    merge_report,
    resolve_near_duplicate_conflicts,
)
from controlbreast.data.manifest import PreparedRow, manifest_bytes
from controlbreast.data.manifest_rows import manifest_rows
from controlbreast.data.prepare import Prepared, load_all
from controlbreast.data.privacy import source_path_renamer
from controlbreast.data.records import REASONS, Candidate, Rejection
from controlbreast.errors import IngestError, SampleError
from controlbreast.outputs import atomic_folder, csv_bytes

# Columns kept as they were, so an unchanged data set gives a byte-identical folder (DVC reruns
# nothing downstream); the reason of each row is in its problem text and in the metrics.
REJECTED_COLUMNS = ("source_path", "problem")


def _partition(results: Iterable[Prepared | SampleError]) -> tuple[list[Prepared], list[SampleError]]:
    good, bad = [], []
    for result in results:
        (bad if isinstance(result, SampleError) else good).append(result)
    return good, bad


def _fail_on(errors: list[SampleError], cfg: DataConfig, when: str = "") -> None:
    if errors and cfg.on_error == "fail":
        listed = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise IngestError(f"{len(errors)} bad input(s){when}; set data.on_error: skip to leave "
                          f"them out and list them in rejected.csv:\n{listed}{more}")


def _check(good: list[Prepared], errors: list[SampleError], cfg: DataConfig) -> None:
    _fail_on(errors, cfg)
    if not good:
        raise IngestError(f"no usable images in {source_name(cfg)}" +
                          (f" ({len(errors)} inputs rejected)" if errors else ": the data set is empty"))


def _remove(build: Path, dropped: Iterable[Prepared]) -> None:
    """Delete the files that workers wrote for inputs left out after all (duplicates)."""
    for prepared in dropped:
        for written in prepared.written:
            (build / "images" / f"{written.name}.png").unlink()
            (build / "masks" / f"{written.name}.png").unlink(missing_ok=True)


def _write_tables(build: Path, rows: list[dict], rejected: list[Rejection],
                  rename: Callable[[str], str]) -> None:
    (build / "manifest.csv").write_bytes(manifest_bytes(rows, PreparedRow))
    listed = [{"source_path": rename(r.source_path), "problem": rename(r.problem)} for r in rejected]
    (build / "rejected.csv").write_bytes(csv_bytes(listed, REJECTED_COLUMNS))


def split_counts(rows: list[dict]) -> dict[str, int]:
    """Images per split and class, e.g. ``{"train/benign": 120, ...}``, for metrics and logs."""
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['label']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def rejection_counts(rejected: list[Rejection]) -> dict[str, int]:
    """Rejected inputs per reason (see ``records.REASONS``), for metrics and logs."""
    return {reason: n for reason in REASONS if (n := sum(r.reason == reason for r in rejected))}


def _load_checked(candidates: list[Candidate], cfg: DataConfig, build: Path) -> tuple[
        list[Prepared], list[Rejection]]:
    loaded, bad = _partition(load_all(candidates, cfg, build))
    _check(loaded, bad, cfg)
    warn_depths(loaded)
    good, dropped = drop_exact_duplicates(loaded, cfg)
    good, conflicting = resolve_near_duplicate_conflicts(good, cfg)
    if not good:
        raise IngestError(f"no usable images: all {len(loaded)} are duplicates or label conflicts")
    _remove(build, (prepared for prepared, _ in dropped + conflicting))
    rejected = [Rejection(e.source_path, e.problem) for e in bad]
    return good, rejected + [reason for _, reason in dropped + conflicting]


def warn_depths(loaded: list[Prepared], shown: int = 20) -> None:
    """One warning line per file whose declared depth looks wrong (the first ``shown``), on stderr:
    the image is kept, scaled as declared, and ``validate`` would only see it as dark."""
    flagged = [p for p in loaded if p.depth_warning]
    for prepared in flagged[:shown]:
        print(f"WARNING: {prepared.candidate.source_path}: {prepared.depth_warning}", file=sys.stderr)
    if len(flagged) > shown:
        print(f"WARNING: ... and {len(flagged) - shown} more file(s) whose declared bit depth looks wrong",
              file=sys.stderr)


@dataclass(frozen=True)
class IngestResult:
    """Manifest rows, rejected inputs and the near-duplicate/mask ``merge_report``."""

    rows: list[dict]
    rejected: list[Rejection]
    merges: dict


def run_ingest(config: Config, every_class: bool = True) -> IngestResult:
    """Run the ingest stage. Raises ``IngestError`` (``ConfigError`` for a class no label matches).

    Problems found while listing the inputs stop an ``on_error: fail`` run before any image is
    decoded. ``every_class``: each of ``data.classes`` must be in the source (an external test
    set may hold any subset of them).
    """
    cfg = config.data
    candidates, errors = discover(cfg, config.phantom)
    _fail_on(errors, cfg, " found while listing the inputs")
    if every_class:
        check_classes((c.source_label for c in candidates), cfg)
    rename = source_path_renamer(cfg, [c.source_path for c in candidates] + [e.source_path for e in errors])
    candidates, excluded = exclude_unmapped(candidates, cfg)
    with atomic_folder(Path(config.paths.prepared)) as build:
        (build / "images").mkdir()
        (build / "masks").mkdir()
        good, dropped = _load_checked(candidates, cfg, build)
        rejected = [Rejection(e.source_path, e.problem) for e in errors] + excluded + dropped
        rows = manifest_rows(good, cfg, config.seed, rename)
        _write_tables(build, rows, rejected, rename)
    return IngestResult(rows, rejected, merge_report(good, cfg))


def ingest(config: Config, every_class: bool = True) -> tuple[list[dict], list[Rejection]]:
    """``run_ingest``'s manifest rows and rejected inputs."""
    result = run_ingest(config, every_class)
    return result.rows, result.rejected

