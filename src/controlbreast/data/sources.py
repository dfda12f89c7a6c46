"""Finding inputs on disk: the BUSI folder layout and a generic CSV manifest.

Discovery only lists ``Candidate``s (and the problems found while listing); pixels are read later,
in parallel, by ``load_file_sample``. Paths in candidates are POSIX and relative to the data root,
so manifests never carry a user's absolute paths.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import defaultdict
from functools import partial
from pathlib import Path

from controlbreast.data.config import DataConfig
from controlbreast.data.imageio import read_mask, read_source
from controlbreast.data.phantom import PHANTOM_LABELS
from controlbreast.data.privacy import group_key, keyed_group
from controlbreast.data.records import Candidate, RawSample
from controlbreast.errors import ConfigError, ManifestError, SampleError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
_BUSI_NAME = re.compile(r"^(?P<stem>.+?)(?P<mask>_mask(?:_\d+)?)?$")
CSV_REQUIRED = ("path", "label")
CSV_OPTIONAL = ("mask_path", "group_id", "laterality", "pixel_spacing_mm")
LATERALITIES = {"l": "L", "left": "L", "r": "R", "right": "R"}


def load_file_sample(root: Path, image: str, masks: tuple[str, ...], key: bytes | None,
                     max_pixels: int | None = None, laterality: str | None = None,
                     spacing_mm: float | None = None) -> RawSample:
    """Read one image at its own depth (and its merged masks, if any) from ``root``; raises
    ``SampleError``, also for an image above ``max_pixels`` (before decoding it).

    Of the DICOM header only the keyed PatientID, Modality, laterality and pixel spacing travel
    on: names, dates and ids never leave this function. ``laterality`` and ``spacing_mm`` (CSV
    columns) override the header's.
    """
    source = read_source(root / image, image, max_pixels)
    mask = (read_mask([root / m for m in masks], list(masks), source.pixels.shape, max_pixels)
            if masks else None)
    tags = source.tags
    group = keyed_group(tags.patient, key, image) if tags.patient else None
    scale = source.scale_bits if source.scale_bits != source.bit_depth else None
    return RawSample(image=source.pixels, mask=mask, sha256=source.sha256, bit_depth=source.bit_depth,
                     group=group, scale_bits=scale, modality=tags.modality,
                     laterality=laterality or tags.laterality, spacing_mm=spacing_mm or tags.spacing_mm)


def _candidate(cfg: DataConfig, key: bytes | None, image: str, label: str, masks: tuple[str, ...],
               group: str | None, laterality: str | None = None,
               spacing_mm: float | None = None) -> Candidate:
    root = Path(cfg.root).resolve()
    load = partial(load_file_sample, root, image, masks, key, cfg.max_pixels, laterality, spacing_mm)
    return Candidate(source_path=image, source_label=label, group=group, load=load, has_mask=bool(masks),
                     spacing_mm=spacing_mm)


def unreadable_name(name: str) -> str | None:
    """``name`` with undecodable bytes escaped (``\\xe9``) when it is not valid UTF-8, else None.

    Python keeps such bytes as surrogates, which no CSV, JSON or MLflow write accepts: better one
    line naming the file at listing time than a crash after every image was decoded.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return None


def _busi_files(folder: Path) -> tuple[list[Path], list[SampleError]]:
    files, errors = [], []
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        escaped = unreadable_name(path.name)
        if escaped is None:
            files.append(path)
        else:
            errors.append(SampleError(f"{folder.name}/{escaped}", "file name is not valid UTF-8; "
                                      "rename the file"))
    return files, errors


def _busi_folder(cfg: DataConfig, key: bytes | None,
                 folder: Path) -> tuple[list[Candidate], list[SampleError]]:
    images: dict[str, str] = {}
    masks: dict[str, list[str]] = defaultdict(list)
    files, errors = _busi_files(folder)
    for path in files:
        match = _BUSI_NAME.match(path.stem)
        relative = f"{folder.name}/{path.name}"
        if match["mask"]:
            masks[match["stem"]].append(relative)
        else:
            images[match["stem"]] = relative
    if cfg.to_class(folder.name) is None:  # left out by the user: listed by ingest, not checked
        return [_candidate(cfg, key, image, folder.name, (), None) for image in images.values()], []
    errors += [SampleError(parts[0], "mask without an image")
               for stem, parts in masks.items() if stem not in images]
    candidates = []
    for stem, image in sorted(images.items()):
        if not masks.get(stem):
            errors.append(SampleError(image, f"missing mask (expected '{stem}_mask.png')"))
            continue
        candidates.append(_candidate(cfg, key, image, folder.name, tuple(sorted(masks[stem])), None))
    return candidates, errors


def busi_candidates(cfg: DataConfig) -> tuple[list[Candidate], list[SampleError]]:
    """The "Dataset_BUSI_with_GT" layout: ``<label>/<label> (N).png`` + ``..._mask[_K].png``.

    Numbers may have gaps; extra ``_mask_1``, ``_mask_2`` parts are merged into one mask. The
    images of a folder whose name maps to no configured class are listed too: ingest leaves them
    out and says so.
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise ConfigError(f"data.root {root} is not a folder")
    key = group_key(cfg)
    candidates: list[Candidate] = []
    errors: list[SampleError] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        escaped = unreadable_name(folder.name)
        if escaped is not None:
            errors.append(SampleError(f"{escaped}/", "folder name is not valid UTF-8; rename it"))
            continue
        found, problems = _busi_folder(cfg, key, folder)
        candidates += found
        errors += problems
    return candidates, errors


def _inside(root: Path, relative: str, row: int, column: str) -> str:
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise SampleError(f"row {row}", f"{column} {relative!r} points outside the data root {root}")
    return resolved.relative_to(root).as_posix()


def _csv_row(cfg: DataConfig, key: bytes | None, root: Path, number: int, row: dict) -> Candidate:
    image, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
    if not image or not label:
        raise SampleError(f"row {number}", "empty path or label")
    image = _inside(root, image, number, "path")
    mask = (row.get("mask_path") or "").strip()
    masks = (_inside(root, mask, number, "mask_path"),) if mask else ()
    group = (row.get("group_id") or "").strip()
    where = f"{cfg.manifest} (column group_id)"
    side = (row.get("laterality") or "").strip()
    if side and side.lower() not in LATERALITIES:
        raise SampleError(f"row {number}", f"laterality {side!r} is not L, R, left or right")
    return _candidate(cfg, key, image, label, masks, keyed_group(group, key, where) if group else None,
                      LATERALITIES.get(side.lower()), _spacing(row, number))


def _spacing(row: dict, number: int) -> float | None:
    """The row's ``pixel_spacing_mm`` (mm per pixel, e.g. 0.07 for a digital film), None if empty."""
    text = (row.get("pixel_spacing_mm") or "").strip()
    try:
        spacing = float(text) if text else None
    except ValueError:
        spacing = -1.0
    if spacing is not None and not 0.0 < spacing <= 5.0:
        raise SampleError(f"row {number}", f"pixel_spacing_mm {text!r} is not a spacing in mm "
                          "(a number in (0, 5], e.g. 0.07)")
    return spacing


def source_labels(cfg: DataConfig) -> set[str] | None:
    """The labels the configured source holds, read without building candidates or decoding an
    image (what ``overlay`` checks ``data.classes`` against): the phantom's three, a BUSI root's
    subfolders, a CSV manifest's ``label`` column; None when the folder or manifest is not here."""
    if cfg.source == "phantom":
        return set(PHANTOM_LABELS)
    if cfg.source == "busi":
        root = Path(cfg.root)
        return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} \
            if root.is_dir() else None
    if not Path(cfg.manifest).is_file():
        return None
    rows = csv.DictReader(io.StringIO(read_manifest_text(Path(cfg.manifest)), newline=""))
    return {label for row in rows if (label := (row.get("label") or "").strip())}


def read_manifest_text(manifest: Path) -> str:
    """The manifest's text as UTF-8 (a byte-order mark is accepted); ``ManifestError`` naming the
    file and the line of the first byte that is not UTF-8 (spreadsheets often save latin-1)."""
    try:
        data = manifest.read_bytes()
    except OSError as error:
        raise ManifestError(f"{manifest}: cannot read the manifest ({error.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ManifestError(f"{manifest}: line {line} is not UTF-8 (byte 0x{data[error.start]:02x}); "
                            "re-save the file as UTF-8") from None


def csv_candidates(cfg: DataConfig) -> tuple[list[Candidate], list[SampleError]]:
    """A manifest ``path,label[,mask_path][,group_id][,laterality][,pixel_spacing_mm]`` with paths
    relative to ``data.root``.

    ``group_id`` (a patient or study) is stored only as a keyed hash (see ``privacy``). Labels
    that map to no class are listed too: ingest leaves them out and says so.
    """
    root, manifest = Path(cfg.root).resolve(), Path(cfg.manifest)
    reader = csv.DictReader(io.StringIO(read_manifest_text(manifest), newline=""))
    columns = set(reader.fieldnames or ())
    missing = [c for c in CSV_REQUIRED if c not in columns]
    unknown = sorted(columns - set(CSV_REQUIRED) - set(CSV_OPTIONAL))
    if missing or unknown:
        raise ManifestError(f"{manifest}: missing columns {missing}, unknown columns {unknown}; "
                            f"expected {list(CSV_REQUIRED)} and optionally {list(CSV_OPTIONAL)}")
    key = group_key(cfg)
    candidates, errors = [], []
    for number, row in enumerate(reader, start=2):
        try:
            candidates.append(_csv_row(cfg, key, root, number, row))
        except SampleError as error:
            errors.append(error)
    if not candidates and not errors:
        raise ManifestError(f"{manifest}: a header and no rows: nothing to ingest (one row per image: "
                            f"{', '.join(reader.fieldnames or CSV_REQUIRED)})")
    return candidates, errors
