"""Everything the report shows, read from the stages' outputs; a missing input is ``None``.

The report is the last stage but must not fail because an optional stage (tuning, data
efficiency, external tests) was switched off: each reader returns ``None`` or an empty list for
what is absent, and the sections say so in one line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from controlbreast.config import Config
from controlbreast.errors import DataError
from controlbreast.mixing import ARMS

METRICS = ("ingest", "data_quality", "synthetic", "classifier", "tune")


@dataclass(frozen=True)
class Example:
    """One real training image (H, W) uint8 with its control channels ``{name: (H, W) uint8}``."""

    id: str
    label: str
    image: np.ndarray
    controls: dict[str, np.ndarray]


@dataclass(frozen=True)
class Inputs:
    """What the stages wrote: metrics JSON by name, CSV rows (``external_roc``: every external
    set's ROC, with a ``set`` column), PNG bytes by file name, examples."""

    classes: tuple[str, ...]
    metrics: dict[str, dict | None]
    manifest: list[dict]
    rejected: list[dict]
    roc: list[dict]
    calibration: list[dict]
    external_roc: list[dict]
    training: list[dict]
    synthetic_pictures: dict[str, bytes]
    tune_pictures: dict[str, bytes]
    examples: list[Example]
    lock: dict


def read_json(path: Path) -> dict | None:
    """A metrics file, or None when the stage that writes it did not run."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def read_rows(path: Path) -> list[dict]:
    """A CSV as dicts of strings; an absent file has no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def pictures(folder: Path) -> dict[str, bytes]:
    """The PNGs of ``folder`` by name, sorted (grids first, then the closest pairs)."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.png"))}


def epoch_history_rows(classifiers: Path) -> list[dict]:
    """Every arm's and seed's ``history.csv`` as rows with ``arm`` and ``seed`` columns added."""
    rows = []
    for arm in ARMS:
        for history in sorted((Path(classifiers) / arm).glob("seed-*/history.csv")):
            seed = history.parent.name.removeprefix("seed-")
            rows += [{"arm": arm, "seed": seed, **row} for row in read_rows(history)]
    return rows


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def examples(config: Config, manifest: list[dict], per_class: int) -> list[Example]:
    """The first ``per_class`` training images of each class with every control channel found."""
    prepared, controls = Path(config.paths.prepared), Path(config.paths.controls)
    channels = sorted(p.name for p in controls.iterdir() if p.is_dir()) if controls.is_dir() else []
    found = []
    for name in config.data.classes:
        rows = [r for r in manifest if r["label"] == name and r["split"] == "train"][:per_class]
        for row in rows:
            image = prepared / "images" / f"{row['id']}.png"
            if image.is_file():
                found.append(Example(row["id"], name, _grey(image), {
                    channel: _grey(controls / channel / f"{row['id']}.png") for channel in channels
                    if (controls / channel / f"{row['id']}.png").is_file()}))
    return found


def read_lock(path: Path) -> dict:
    """``dvc.lock`` as a mapping (empty before the first ``dvc repro``)."""
    path = Path(path)
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def collect(config: Config, root: Path = Path(".")) -> Inputs:
    """Read every input of the report under the configured paths (``dvc.lock`` under ``root``)."""
    paths = config.paths
    manifest = read_rows(Path(paths.prepared) / "manifest.csv")
    plots = Path(paths.reports) / "classifier"
    return Inputs(classes=tuple(config.data.classes),
                  metrics={name: read_json(Path(paths.metrics) / f"{name}.json") for name in METRICS},
                  manifest=manifest, rejected=read_rows(Path(paths.prepared) / "rejected.csv"),
                  roc=read_rows(plots / "roc.csv"), calibration=read_rows(plots / "calibration.csv"),
                  external_roc=read_rows(plots / "roc_external.csv"),
                  training=epoch_history_rows(paths.classifiers),
                  synthetic_pictures=pictures(Path(paths.reports) / "synthetic"),
                  tune_pictures=pictures(Path(paths.reports) / "tune"),
                  examples=examples(config, manifest, config.report.examples),
                  lock=read_lock(Path(root) / "dvc.lock"))
