"""Finding inputs on disk: the BUSI folder layout and a generic CSV manifest.

Discovery only lists ``Candidate``s (and the problems found while listing); pixels are read later,
in parallel, by ``load_file_sample``. Paths in candidates are POSIX and relative to the data root,
so manifests never carry a user's absolute paths.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from functools import partial
from pathlib import Path

from controlbreast.config import DataConfig
from controlbreast.data.imageio import read_gray, read_mask
from controlbreast.data.records import Candidate, RawSample
from controlbreast.errors import ConfigError, ManifestError, SampleError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
_BUSI_NAME = re.compile(r"^(?P<stem>.+?)(?P<mask>_mask(?:_\d+)?)?$")
CSV_REQUIRED = ("path", "label")
CSV_OPTIONAL = ("mask_path", "group_id")


def salted_group(identifier: str, salt: str) -> str:
    """A stable, non-identifying group key for a patient identifier."""
    return "pid-" + hashlib.sha256(f"{salt}:{identifier}".encode()).hexdigest()[:16]


def load_file_sample(root: Path, image: str, masks: tuple[str, ...], salt: str) -> RawSample:
    """Read one image (and its merged masks, if any) from ``root``; raises ``SampleError``."""
    pixels, bits, digest, patient = read_gray(root / image, image)
    mask = read_mask([root / m for m in masks], list(masks), pixels.shape) if masks else None
    group = salted_group(patient, salt) if patient else None
    return RawSample(image=pixels, mask=mask, sha256=digest, bit_depth=bits, group=group)


def _candidate(cfg: DataConfig, image: str, label: str, masks: tuple[str, ...],
               group: str | None) -> Candidate:
    root = Path(cfg.root).resolve()
    load = partial(load_file_sample, root, image, masks, cfg.group_salt)
    return Candidate(source_path=image, source_label=label, group=group, load=load)


def _busi_folder(cfg: DataConfig, folder: Path) -> tuple[list[Candidate], list[SampleError]]:
    images: dict[str, str] = {}
    masks: dict[str, list[str]] = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _BUSI_NAME.match(path.stem)
        relative = f"{folder.name}/{path.name}"
        if match["mask"]:
            masks[match["stem"]].append(relative)
        else:
            images[match["stem"]] = relative
    errors = [SampleError(parts[0], "mask without an image")
              for stem, parts in masks.items() if stem not in images]
    candidates = []
    for stem, image in sorted(images.items()):
        if not masks.get(stem):
            errors.append(SampleError(image, f"missing mask (expected '{stem}_mask.png')"))
            continue
        candidates.append(_candidate(cfg, image, folder.name, tuple(sorted(masks[stem])), None))
    return candidates, errors


def busi_candidates(cfg: DataConfig) -> tuple[list[Candidate], list[SampleError]]:
    """The "Dataset_BUSI_with_GT" layout: ``<label>/<label> (N).png`` + ``..._mask[_K].png``.

    Numbers may have gaps; extra ``_mask_1``, ``_mask_2`` parts are merged into one mask. A folder
    whose name maps to no configured class is reported, not guessed.
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise ConfigError(f"data.root {root} is not a folder")
    candidates: list[Candidate] = []
    errors: list[SampleError] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if cfg.to_class(folder.name) is None:
            errors.append(SampleError(f"{folder.name}/", f"unknown label folder {folder.name!r} "
                                      f"(classes: {list(cfg.classes)}; add it to data.label_map)"))
            continue
        found, problems = _busi_folder(cfg, folder)
        candidates += found
        errors += problems
    return candidates, errors


def _inside(root: Path, relative: str, row: int, column: str) -> str:
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise SampleError(f"row {row}", f"{column} {relative!r} points outside the data root {root}")
    return resolved.relative_to(root).as_posix()


def _csv_row(cfg: DataConfig, root: Path, number: int, row: dict) -> Candidate:
    image, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
    if not image or not label:
        raise SampleError(f"row {number}", "empty path or label")
    image = _inside(root, image, number, "path")
    if cfg.to_class(label) is None:
        raise SampleError(image, f"unknown label {label!r} (classes: {list(cfg.classes)}; "
                                 "add it to data.label_map)")
    mask = (row.get("mask_path") or "").strip()
    masks = (_inside(root, mask, number, "mask_path"),) if mask else ()
    group = (row.get("group_id") or "").strip()
    return _candidate(cfg, image, label, masks, salted_group(group, cfg.group_salt) if group else None)


def csv_candidates(cfg: DataConfig) -> tuple[list[Candidate], list[SampleError]]:
    """A manifest ``path,label[,mask_path][,group_id]`` with paths relative to ``data.root``.

    ``group_id`` (a patient or study) is stored only as a salted hash.
    """
    root, manifest = Path(cfg.root).resolve(), Path(cfg.manifest)
    with manifest.open(newline="") as stream:
        reader = csv.DictReader(stream)
        columns = set(reader.fieldnames or ())
        missing = [c for c in CSV_REQUIRED if c not in columns]
        unknown = sorted(columns - set(CSV_REQUIRED) - set(CSV_OPTIONAL))
        if missing or unknown:
            raise ManifestError(f"{manifest}: missing columns {missing}, unknown columns {unknown}; "
                             f"expected {list(CSV_REQUIRED)} and optionally {list(CSV_OPTIONAL)}")
        candidates, errors = [], []
        for number, row in enumerate(reader, start=2):
            try:
                candidates.append(_csv_row(cfg, root, number, row))
            except SampleError as error:
                errors.append(error)
    return candidates, errors
