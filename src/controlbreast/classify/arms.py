"""One arm over its seeds: train each, save it under ``<paths.classifiers>/<arm>/seed-<k>/``, and
log it as a nested MLflow run (params, per-epoch metrics, the model as an MLflow pyfunc).

Arms trained on a fraction of the real training split (``classifier.real_fractions``) go to
``<paths.classifiers>/fractions/<arm>@<fraction>/seed-<k>/``; the recipes of ``classifier.recipes``
to ``<paths.classifiers>/recipes/<recipe>[@<fraction>]/seed-<k>/``.

The arm's folder is built beside its destination and swapped in when every seed is done, so a
failed run leaves the previous models. ``summary.json`` lists the seeds with their validation AUC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow

from controlbreast.classify.models import save_classifier
from controlbreast.classify.predict import log_pyfunc
from controlbreast.classify.train import TrainResult, train_classifier
from controlbreast.config import Config
from controlbreast.distributed import is_main_process
from controlbreast.mixing import ARMS, FRACTIONS, RECIPES, fraction_arm
from controlbreast.outputs import atomic_folder, csv_bytes, write_atomic


@dataclass(frozen=True)
class SeedModel:
    """A trained seed: where it lies, its MLflow model and the validation AUC of its kept epoch."""

    arm: str
    seed: int
    folder: Path
    model_uri: str
    run_id: str
    val_auc: float
    epoch: int
    val_ids: tuple[str, ...]
    real_images: int = 0
    val_auc_interval: tuple[float | None, float | None] = (None, None)


def seed_folder(root: Path, arm: str, seed: int) -> Path:
    return Path(root) / arm / f"seed-{seed}"


def arm_folder(root: Path, arm: str, fraction: float = 1.0) -> Path:
    """Where ``arm`` at ``fraction`` of the real training split lives under ``paths.classifiers``:
    a built-in arm in its own folder (below fraction 1 under ``fractions/``), a recipe under
    ``recipes/`` at every fraction."""
    if arm not in ARMS:
        return Path(root) / RECIPES / fraction_arm(arm, fraction)
    return Path(root) / arm if fraction == 1.0 else Path(root) / FRACTIONS / fraction_arm(arm, fraction)


def _log_seed(result: TrainResult, folder: Path) -> str:
    data = result.data
    mlflow.log_params({"arm": result.card.arm, "seed": result.card.seed, "real_images": data.real_images,
                       "synthetic_images": data.synthetic_images, "val_images": len(data.val)})
    mlflow.log_metrics({"best_val_auc": result.card.val_auc, "best_epoch": result.card.epoch})
    return log_pyfunc(folder).model_uri


def _train_seed(config: Config, arm: str, seed: int, build: Path, fraction: float) -> SeedModel:
    name = fraction_arm(arm, fraction)
    with mlflow.start_run(run_name=f"{name}/seed-{seed}", nested=True) as run:
        result = train_classifier(config, arm, seed,
                                  on_epoch=lambda epoch, values: mlflow.log_metrics(values, step=epoch),
                                  fraction=fraction)
        folder = seed_folder(build.parent, name, seed)
        save_classifier(build / folder.name, result.model, result.card)
        write_atomic(build / folder.name / "history.csv",
                     csv_bytes([{"epoch": i + 1, **h} for i, h in enumerate(result.history)],
                               ["epoch", *result.history[0]]))
        uri = _log_seed(result, build / folder.name)
    return SeedModel(name, seed, folder, uri, run.info.run_id, result.card.val_auc, result.card.epoch,
                     result.val_ids, result.data.real_images,
                     (result.card.val_auc_low, result.card.val_auc_high))


def train_arm(config: Config, arm: str, fraction: float = 1.0) -> list[SeedModel]:
    """Train every seed of ``classifier.seeds`` for ``arm`` (on ``fraction`` of the real training
    split) under one nested MLflow run; the other processes of a multi-process launch return []."""
    if not is_main_process():  # a multi-process launch: train alongside the main process, write nothing
        for seed in config.classifier.seeds:
            train_classifier(config, arm, seed, fraction=fraction)
        return []
    destination, name = arm_folder(config.paths.classifiers, arm, fraction), fraction_arm(arm, fraction)
    with mlflow.start_run(run_name=name, nested=True), atomic_folder(destination) as build:
        mlflow.set_tag("arm", name)
        models = [_train_seed(config, arm, seed, build, fraction) for seed in config.classifier.seeds]
        mlflow.log_metric("mean_val_auc", sum(m.val_auc for m in models) / len(models))
        summary = [{"seed": m.seed, "val_auc": m.val_auc, "epoch": m.epoch, "run_id": m.run_id,
                    "model_uri": m.model_uri} for m in models]
        found = {"arm": name, "fraction": fraction, "real_images": models[0].real_images, "seeds": summary}
        (build / "summary.json").write_text(json.dumps(found, indent=2))
    return models
