"""``controlbreast train-recipes``: every ``classifier.recipes`` arm at every ``classifier.real_fractions``
→ ``<paths.classifiers>/recipes/<recipe>[@<fraction>]/``, with the tuned mix ratio when tuning is on
(the same one ``real+synthetic`` takes, so ``real-repeat`` matches its count). Nothing is registered."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from controlbreast.classify.arm_training import train_arms
from controlbreast.config import load_config
from controlbreast.mixing import RECIPES
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, tuned_values


def main(params: Path) -> None:
    """Train each recipe × fraction (smallest first) × seed; an empty ``recipes/`` when there are none."""
    config = load_config(params)
    tuned = {key: value for key, value in tuned_values(config).items() if key == "mix_ratio"}
    config = apply_tuned(config, tuned)
    (Path(config.paths.classifiers) / RECIPES).mkdir(parents=True, exist_ok=True)  # a DVC out, maybe empty
    fractions = sorted(config.classifier.real_fractions)
    with stage_run(config, "train_recipes", ("data", "classifier", "synthetic_filter"),
                   data=("training", "validation", "synthetic")):
        mlflow.log_params({f"tuned.{key}": value for key, value in tuned.items()})
        start = time.perf_counter()
        models = train_arms(config, [(name, f) for f in fractions for name in config.classifier.recipes])
        mlflow.log_metric("seconds", time.perf_counter() - start)
    for model in models:
        print(f"train-recipes: {model.arm} seed {model.seed} ({model.real_images} real images): "
              f"val AUC {model.val_auc:.3f} -> {model.folder}")
