"""``controlbreast predict IMAGE...``: per-class probabilities (CSV on stdout) from a registry
alias, a model folder or an MLflow model URI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from controlbreast.classify.predict import image_files, load_predictor
from controlbreast.classify.registry import REGISTERED_NAME
from controlbreast.config import load_config
from controlbreast.outputs import csv_bytes
from controlbreast.tracking import use_store


def model_source(model: str, params: Path) -> str:
    """A folder or URI as given; an alias becomes ``models:/<registered name>@<alias>`` in the
    project's store (read from ``params``)."""
    if Path(model).is_dir() or ":/" in model:
        if model.startswith("models:/"):
            use_store(load_config(params))
        return model
    use_store(load_config(params))
    return f"models:/{REGISTERED_NAME}@{model}"


def main(params: Path, images: Sequence[Path], model: str) -> None:
    """Print ``image,<class>...`` rows, one per image, probabilities to 6 decimals."""
    predictor = load_predictor(model_source(model, params))
    files = image_files(images)
    probabilities = predictor.predict_files(files)
    classes = list(predictor.card.classes)
    rows = [{"image": str(path), **{c: f"{p:.6f}" for c, p in zip(classes, row, strict=True)}}
            for path, row in zip(files, probabilities, strict=True)]
    sys.stdout.write(csv_bytes(rows, ["image", *classes]).decode())
