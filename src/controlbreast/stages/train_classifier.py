"""``controlbreast train-classifier``: arms × seeds → ``<paths.classifiers>/<arm>/seed-<k>/``; the
best of them on validation is registered as ``candidate`` (``controlbreast promote`` decides on the
champion)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import mlflow

from controlbreast.classify.arm_training import train_arms
from controlbreast.classify.models import check_classifier
from controlbreast.classify.registry import register_candidate
from controlbreast.config import load_config
from controlbreast.distributed import is_main_process, peers
from controlbreast.mixing import NO_AUGMENTATION
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, overrides, tuned_values

REAL_ARMS = {"real", NO_AUGMENTATION}  # the arms that read no synthetic image


def main(params: Path, arms: Sequence[str]) -> None:
    """Train ``arms`` (one nested run each, one per seed inside), then register the best model.
    ``real+synthetic`` takes the tuned mix ratio when ``tune.n_trials`` > 0 (the real arm, trained
    before tuning, reads no tuning result)."""
    config = load_config(params)
    check_classifier(config.classifier.model, len(config.data.classes), config.classifier.model_kwargs,
                     config.data.image_size, str(params))
    tuned = tuned_values(config) if "real+synthetic" in arms else {}
    tuned = {key: value for key, value in tuned.items() if key == "mix_ratio"}
    for line in overrides(config, tuned, params):
        print(f"train-classifier: {line}")
    config = apply_tuned(config, tuned)
    if not is_main_process():  # the same models on its share of each batch; writes nothing
        with peers("train_classifier"):
            train_arms(config, [(arm, 1.0) for arm in arms])
        return
    roles = ("training", "validation", *(("synthetic",) if set(arms) - REAL_ARMS else ()))
    with peers("train_classifier"), stage_run(config, "train_classifier", ("data", "classifier"), data=roles):
        mlflow.set_tag("arms", ",".join(arms))
        mlflow.log_params({f"tuned.{key}": value for key, value in tuned.items()})
        start = time.perf_counter()
        models = train_arms(config, [(arm, 1.0) for arm in arms])
        mlflow.log_metric("seconds", time.perf_counter() - start)
        best = max(models, key=lambda m: m.val_auc)
        if config.classifier.registry:
            version = register_candidate(best.model_uri, best.val_auc, best.val_ids,
                                         {"arm": best.arm, "seed": str(best.seed), "run_id": best.run_id},
                                         best.val_auc_interval)
            mlflow.set_tag("registry.version", version)
    for model in models:
        print(f"train-classifier: {model.arm} seed {model.seed}: val AUC {model.val_auc:.3f} "
              f"(epoch {model.epoch}) -> {model.folder}")
    if config.classifier.registry:
        print(f"registry: version {version} ({best.arm} seed {best.seed}) is candidate; "
              "`controlbreast promote` compares it with the champion")
