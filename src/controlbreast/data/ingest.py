"""Ingest: any source → resized grayscale images, masks and a split manifest in one folder.

Output layout (``paths.prepared``)::

    images/<id>.png     (S, S) uint8 grayscale, S = data.image_size
    masks/<id>.png      (S, S) uint8 0/255 lesion mask, for images whose source has one
    manifest.csv        one row per image (``data/manifest.py``: PreparedRow)
    rejected.csv        inputs left out, with the reason: bad inputs under data.on_error=skip,
                        and exact duplicates (one copy kept, or none if their labels conflict)

Workers write each image into a folder built beside the destination, swapped in only at the end,
so an interrupted or failed run leaves the previous output (or nothing), never a half-written set.
Ids follow source-path order and keep gaps where inputs were left out, so an id never changes
because another file was bad. Same params and inputs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from controlbreast.config import Config, DataConfig, PhantomConfig
from controlbreast.data.imageio import encode_png
from controlbreast.data.manifest import PreparedRow, manifest_bytes
from controlbreast.data.phantom import phantom_candidates
from controlbreast.data.preprocess import fit_to_square
from controlbreast.data.records import Candidate
from controlbreast.data.sources import busi_candidates, csv_candidates
from controlbreast.data.splits import (
    assign_splits,
    merge_groups,
    near_duplicate_pairs,
    perceptual_hash,
)
from controlbreast.errors import IngestError, SampleError
from controlbreast.outputs import atomic_folder, csv_bytes


@dataclass(frozen=True)
class Prepared:
    """One candidate after its worker loaded, resized and wrote it as ``images/<id>.png`` (and
    ``masks/<id>.png`` when ``has_mask``); only this metadata travels back."""

    candidate: Candidate
    image_id: str
    has_mask: bool
    sha256: str
    bit_depth: int
    orig_shape: tuple[int, int]
    phash: int
    group: str | None


def image_id(index: int) -> str:
    """The id of the candidate at ``index`` in source-path order (stable when others fail)."""
    return f"img-{index:06d}"


def prepare(candidate: Candidate, index: int, size: int, mode: str,
            build: Path) -> Prepared | SampleError:
    """Load, resize and write one candidate into ``build``; a bad input returns its error."""
    try:
        raw = candidate.load()
    except SampleError as error:
        return error
    name = image_id(index)
    image = fit_to_square(raw.image, size, mode)
    (build / "images" / f"{name}.png").write_bytes(encode_png(image))
    if raw.mask is not None:
        mask = fit_to_square(raw.mask.astype(np.float32), size, mode) >= 0.5
        (build / "masks" / f"{name}.png").write_bytes(encode_png(mask.astype(np.uint8) * 255))
    return Prepared(candidate, name, raw.mask is not None, raw.sha256, raw.bit_depth,
                    raw.image.shape, perceptual_hash(image), raw.group)


def discover(cfg: DataConfig, phantom_cfg: PhantomConfig) -> tuple[list[Candidate], list[SampleError]]:
    """Candidates of the configured source, sorted by source path, and discovery problems."""
    if cfg.source == "phantom":
        found, errors = phantom_candidates(phantom_cfg), []
    elif cfg.source == "busi":
        found, errors = busi_candidates(cfg)
    else:
        found, errors = csv_candidates(cfg)
    return sorted(found, key=lambda c: c.source_path), errors


def load_all(candidates: list[Candidate], cfg: DataConfig,
             build: Path) -> Iterator[Prepared | SampleError]:
    """``prepare`` every candidate into ``build``, in order, over ``cfg.workers`` processes."""
    jobs = ((c, i, cfg.image_size, cfg.resize, build) for i, c in enumerate(candidates))
    bar = dict(total=len(candidates), desc="ingest", unit="img")
    if cfg.workers == 1:
        yield from tqdm((prepare(*job) for job in jobs), **bar)
        return
    with ProcessPoolExecutor(cfg.workers) as pool:
        chunk = max(1, len(candidates) // (cfg.workers * 16))
        yield from tqdm(pool.map(prepare, *zip(*jobs, strict=True), chunksize=chunk), **bar)


def _partition(results: Iterable[Prepared | SampleError]) -> tuple[list[Prepared], list[SampleError]]:
    good, bad = [], []
    for result in results:
        (bad if isinstance(result, SampleError) else good).append(result)
    return good, bad


def _check(good: list[Prepared], errors: list[SampleError], cfg: DataConfig) -> None:
    if errors and cfg.on_error == "fail":
        listed = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise IngestError(f"{len(errors)} bad input(s); set data.on_error: skip to leave them out "
                          f"and list them in rejected.csv:\n{listed}{more}")
    if not good:
        raise IngestError("no usable images: the data set is empty" +
                          (f" ({len(errors)} inputs rejected)" if errors else ""))


def drop_exact_duplicates(good: list[Prepared], cfg: DataConfig) -> tuple[
        list[Prepared], list[tuple[Prepared, SampleError]]]:
    """Keep one copy of byte-identical inputs; drop every copy when their labels disagree.
    Returns the kept samples (input order) and each dropped one with its reason.

    Real sets contain both (BUSI has one image filed as benign and as malignant): a repeated copy
    only reweights training, but a label conflict has no right answer, so neither copy is used.
    """
    copies: dict[str, list[Prepared]] = {}
    for prepared in good:
        copies.setdefault(prepared.sha256, []).append(prepared)
    kept, dropped = [], []
    for group in copies.values():
        first, rest = group[0], group[1:]
        labels = {cfg.to_class(p.candidate.source_label) for p in group}
        if len(labels) > 1:
            others = ", ".join(p.candidate.source_path for p in group)
            dropped += [(p, SampleError(p.candidate.source_path, f"identical images with "
                                        f"conflicting labels {sorted(labels)}: {others}"))
                        for p in group]
            continue
        kept.append(first)
        dropped += [(p, SampleError(p.candidate.source_path,
                                    f"exact duplicate of {first.candidate.source_path}")) for p in rest]
    return kept, dropped  # dicts keep first-seen order, so kept is in input order


def manifest_rows(good: list[Prepared], cfg: DataConfig, seed: int) -> list[dict]:
    """Manifest rows (ids in source-path order), with merged groups and assigned splits."""
    own_groups = [p.candidate.group or p.group or p.image_id for p in good]
    pairs = near_duplicate_pairs([p.phash for p in good], cfg.near_duplicate_bits)
    groups = merge_groups(own_groups, pairs)
    labels = [cfg.to_class(p.candidate.source_label) for p in good]
    fractions = (cfg.split.train, cfg.split.val, cfg.split.test)
    splits = assign_splits(groups, labels, fractions, seed)
    return [
        {"id": p.image_id, "label": label, "source_label": p.candidate.source_label,
         "split": split, "group": group, "source_path": p.candidate.source_path,
         "orig_height": p.orig_shape[0], "orig_width": p.orig_shape[1], "bit_depth": p.bit_depth,
         "has_mask": p.has_mask, "sha256": p.sha256, "phash": f"{p.phash:016x}"}
        for p, label, group, split in zip(good, labels, groups, splits, strict=True)
    ]


def _remove(build: Path, dropped: Iterable[Prepared]) -> None:
    """Delete the files that workers wrote for inputs left out after all (duplicates)."""
    for prepared in dropped:
        (build / "images" / f"{prepared.image_id}.png").unlink()
        (build / "masks" / f"{prepared.image_id}.png").unlink(missing_ok=True)


def _write_tables(build: Path, rows: list[dict], errors: list[SampleError]) -> None:
    (build / "manifest.csv").write_bytes(manifest_bytes(rows, PreparedRow))
    rejected = [{"source_path": e.source_path, "problem": e.problem} for e in errors]
    (build / "rejected.csv").write_bytes(csv_bytes(rejected, ("source_path", "problem")))


def split_counts(rows: list[dict]) -> dict[str, int]:
    """Images per split and class, e.g. ``{"train/benign": 120, ...}``, for metrics and logs."""
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['label']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def ingest(config: Config) -> tuple[list[dict], list[SampleError]]:
    """Run the ingest stage: manifest rows and rejected inputs. Raises ``IngestError``."""
    cfg = config.data
    candidates, errors = discover(cfg, config.phantom)
    with atomic_folder(Path(config.paths.prepared)) as build:
        (build / "images").mkdir()
        (build / "masks").mkdir()
        loaded, bad = _partition(load_all(candidates, cfg, build))
        errors = errors + bad
        _check(loaded, errors, cfg)
        good, dropped = drop_exact_duplicates(loaded, cfg)
        _remove(build, (prepared for prepared, _ in dropped))
        errors += [reason for _, reason in dropped]
        rows = manifest_rows(good, cfg, config.seed)
        _write_tables(build, rows, errors)
    return rows, errors
