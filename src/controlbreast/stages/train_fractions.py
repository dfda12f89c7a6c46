"""``controlbreast train-fractions``: the data-efficiency arms. ``real`` and ``real+synthetic`` again on
each ``classifier.real_fractions`` below 1 → ``<paths.classifiers>/fractions/<arm>@<fraction>/``
(fraction 1 is the ordinary arms, trained by ``train-classifier``). ``real+synthetic@f`` draws at the
tuned mix ratio when ``tune.n_trials`` > 0, as ``real+synthetic`` and the recipes do, so that its
same-count control (``real-repeat@f``) matches its count. Nothing is registered."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from controlbreast.classify.arm_training import train_arms
from controlbreast.config import load_config
from controlbreast.mixing import FRACTION_ARMS, FRACTIONS
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, tuned_values


def main(params: Path) -> None:
    """Train every fraction below 1 × ``FRACTION_ARMS`` × seed, smallest fraction first."""
    config = load_config(params)
    tuned = {key: value for key, value in tuned_values(config).items() if key == "mix_ratio"}
    config = apply_tuned(config, tuned)
    fractions = sorted(f for f in config.classifier.real_fractions if f < 1.0)
    (Path(config.paths.classifiers) / FRACTIONS).mkdir(parents=True, exist_ok=True)  # a DVC out, maybe empty
    with stage_run(config, "train_fractions", ("data", "classifier"),
                   data=("training", "validation", "synthetic")):
        mlflow.log_params({f"tuned.{key}": value for key, value in tuned.items()})
        start = time.perf_counter()
        models = train_arms(config, [(arm, f) for f in fractions for arm in FRACTION_ARMS])
        mlflow.log_metric("seconds", time.perf_counter() - start)
    for model in models:
        print(f"train-fractions: {model.arm} seed {model.seed} ({model.real_images} real images): "
              f"val AUC {model.val_auc:.3f} -> {model.folder}")
