"""``controlbreast predict IMAGE...``: per-class probabilities (CSV on stdout) from a registry
alias, a model folder or an MLflow model URI of the project (``models:/`` of its registered
classifier, ``runs:/`` of its store: loading an MLflow model unpickles); one row per file, a file
that cannot be read gets its reason in the ``error`` column instead of stopping the others."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from controlbreast.classify.predict import image_files, load_predictor
from controlbreast.classify.registry import REGISTERED_NAME, check_project_run, refuse_foreign_model
from controlbreast.config import load_config
from controlbreast.errors import DataError, ModelError
from controlbreast.outputs import csv_bytes
from controlbreast.tracking import use_store


def open_store(model: str, params: Path) -> None:
    """Point MLflow at the project's store, which a registry alias, ``models:/`` or ``runs:/`` URI needs."""
    needs = (f"--model {model} names a model of the project's registry, which needs the project's "
             "params and MLflow store: run from the project folder, give --params PATH, or give "
             "--model DIR (a classifier folder, e.g. models/classifiers/real/seed-0)")
    if not Path(params).is_file():
        raise ModelError(f"{params}: no such params file; {needs}")
    config = load_config(params)
    store = Path(config.paths.mlruns) / "mlflow.db"
    if not os.environ.get("MLFLOW_TRACKING_URI") and not store.is_file():
        raise ModelError(f"{store}: no MLflow store (paths.mlruns of {params}); {needs}")
    use_store(config)


def model_source(model: str, params: Path) -> str:
    """A folder or URI as given; an alias becomes ``models:/<registered name>@<alias>`` in the
    project's store (read from ``params``)."""
    if Path(model).is_dir() and not (Path(model) / "MLmodel").is_file():
        return model
    if ":/" in model or Path(model).is_dir():
        refuse_foreign_model(model)  # before the store is opened: it is not needed to refuse
        open_store(model, params)
        check_project_run(model)
        return model
    open_store(model, params)
    return f"models:/{REGISTERED_NAME}@{model}"


def main(params: Path, images: Sequence[Path], model: str, strict: bool = False) -> None:
    """Print ``image,<class>...,error`` rows, one per file, probabilities to 6 decimals; a file
    that cannot be read has empty probabilities and its reason. With ``strict`` such a file makes
    the command fail (after every row is printed)."""
    predictor = load_predictor(model_source(model, params))
    files, masks = image_files(images)
    if masks:
        print(f"predict: left out {masks} mask files (*_mask*) found in folders", file=sys.stderr)
    scores, problems = predictor.score_files(files)
    classes = list(predictor.card.classes)
    rows = [{"image": str(path), "error": problem,
             **{c: "" if problem else f"{p:.6f}" for c, p in zip(classes, row, strict=True)}}
            for path, row, problem in zip(files, scores, problems, strict=True)]
    sys.stdout.write(csv_bytes(rows, ["image", *classes, "error"]).decode())
    bad = [(path, problem) for path, problem in zip(files, problems, strict=True) if problem]
    if bad:
        summary = f"{len(bad)} of {len(files)} files could not be read, e.g. {bad[0][0]}: {bad[0][1]}"
        if strict:
            raise DataError(f"{summary} (--strict)")
        print(f"predict: {summary} (see the error column)", file=sys.stderr)
