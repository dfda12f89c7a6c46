"""Arms over their seeds: train each, save it under ``<paths.classifiers>/<arm>/seed-<k>/``, and
log it as a nested MLflow run (params, per-epoch metrics, the data sets it read, the model as an
MLflow pyfunc named by arm and seed).

Arms trained on a fraction of the real training split (``classifier.real_fractions``) go to
``<paths.classifiers>/fractions/<arm>@<fraction>/seed-<k>/``; the recipes of ``classifier.recipes``
to ``<paths.classifiers>/recipes/<recipe>[@<fraction>]/seed-<k>/``.

Every seed of every arm a stage asks for trains first (side by side on ``classifier.workers``
processes); then each arm's folder is built beside its destination and swapped in, so a failed run
leaves the previous models. ``summary.json`` lists the seeds with their validation AUC.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow

from controlbreast.classify.models import save_classifier
from controlbreast.classify.predict import log_pyfunc
from controlbreast.classify.train import TrainResult, train_classifier
from controlbreast.config import Config
from controlbreast.distributed import is_main_process, world_size
from controlbreast.mixing import ARMS, FRACTIONS, RECIPES, fraction_arm
from controlbreast.outputs import atomic_folder, csv_bytes, write_atomic
from controlbreast.tracking import log_data_sets


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


def model_name(arm: str, seed: int) -> str:
    """The logged MLflow model's name: ``real+synthetic-seed-0``, ``real@0_5-seed-1`` (MLflow
    refuses ``.`` in a model name)."""
    return f"{arm}-seed-{seed}".replace(".", "_")


def _log_seed(config: Config, result: TrainResult, folder: Path, name: str) -> str:
    """The seed's params, best epoch, data sets (the synthetic set only when it drew from it) and
    model, named by arm and seed; returns the model's URI."""
    data = result.data
    mlflow.log_params({"arm": result.card.arm, "seed": result.card.seed, "real_images": data.real_images,
                       "synthetic_images": data.synthetic_images, "val_images": len(data.val)})
    mlflow.log_metrics({"best_val_auc": result.card.val_auc, "best_epoch": result.card.epoch})
    log_data_sets(config, ("training", "validation", *(("synthetic",) if data.synthetic_images else ())))
    return log_pyfunc(folder, name=model_name(name, result.card.seed)).model_uri


def _record_seed(config: Config, result: TrainResult, build: Path, name: str) -> SeedModel:
    """Save one trained seed into the arm's ``build`` folder and log it as a nested MLflow run (its
    per-epoch metrics with the epoch as step)."""
    seed = result.card.seed
    with mlflow.start_run(run_name=f"{name}/seed-{seed}", nested=True) as run:
        for epoch, values in enumerate(result.history, start=1):
            mlflow.log_metrics(values, step=epoch)
        folder = seed_folder(build.parent, name, seed)
        save_classifier(build / folder.name, result.model, result.card)
        write_atomic(build / folder.name / "history.csv",
                     csv_bytes([{"epoch": i + 1, **h} for i, h in enumerate(result.history)],
                               ["epoch", *result.history[0]]))
        uri = _log_seed(config, result, build / folder.name, name)
    return SeedModel(name, seed, folder, uri, run.info.run_id, result.card.val_auc, result.card.epoch,
                     result.val_ids, result.data.real_images,
                     (result.card.val_auc_low, result.card.val_auc_high))


def train_jobs(config: Config, jobs: Sequence[tuple[str, float, int]]) -> Iterator[TrainResult]:
    """Train each ``(arm, fraction, seed)`` of ``jobs``; results come in job order, each as soon as it
    and those before it are done. ``classifier.workers`` processes train side by side (each on
    ``classifier.threads`` threads; spawned, so none inherits a torch thread pool). A result does
    not depend on the worker count: every job draws its data and initial weights from its own seed.
    One worker, one job, or a multi-process launch (which already shares each batch): one after
    another in this process."""
    workers = min(config.classifier.workers, len(jobs))
    if workers <= 1 or world_size() > 1:
        yield from (train_classifier(config, arm, seed, fraction=fraction) for arm, fraction, seed in jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_classifier, config, arm, seed, fraction=fraction)
                   for arm, fraction, seed in jobs]
        for future in futures:
            yield future.result()


def _record_arm(config: Config, arm: str, fraction: float, results: list[TrainResult]) -> list[SeedModel]:
    destination, name = arm_folder(config.paths.classifiers, arm, fraction), fraction_arm(arm, fraction)
    with mlflow.start_run(run_name=name, nested=True), atomic_folder(destination) as build:
        mlflow.set_tag("arm", name)
        models = [_record_seed(config, result, build, name) for result in results]
        mlflow.log_metric("mean_val_auc", sum(m.val_auc for m in models) / len(models))
        summary = [{"seed": m.seed, "val_auc": m.val_auc, "epoch": m.epoch, "run_id": m.run_id,
                    "model_uri": m.model_uri} for m in models]
        found = {"arm": name, "fraction": fraction, "real_images": models[0].real_images, "seeds": summary}
        (build / "summary.json").write_text(json.dumps(found, indent=2))
    return models


def train_arms(config: Config, arms: Sequence[tuple[str, float]]) -> list[SeedModel]:
    """Train every seed of ``classifier.seeds`` for each ``(arm, fraction)`` (``fraction`` of the real
    training split), all seeds of all arms in one pool (``train_jobs``), then save and log each arm
    under one nested MLflow run; the other processes of a multi-process launch return []."""
    seeds = config.classifier.seeds
    results = train_jobs(config, [(arm, fraction, seed) for arm, fraction in arms for seed in seeds])
    if not is_main_process():  # a multi-process launch: trained alongside the main process, writes nothing
        for _ in results:
            pass
        return []
    return [model for arm, fraction in arms
            for model in _record_arm(config, arm, fraction, [next(results) for _ in seeds])]
