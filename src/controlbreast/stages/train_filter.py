"""``controlbreast train-filter``: the label-consistency filter's classifiers, one per real fraction, each
on that fraction's real training images alone for a fixed number of epochs → ``<paths.models>/filter/``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.filtering import filter_folder, train_filter
from controlbreast.mixing import fraction_arm
from controlbreast.tracking import safe_key, stage_run


def main(params: Path) -> None:
    """Train the filters; log each one's training size and final loss (``_<fraction>`` below 1)."""
    config = load_config(params)
    with stage_run(config, "train_filter", ("classifier", "synthetic_filter")):
        card = train_filter(config)
        mlflow.log_metrics({safe_key(fraction_arm(name, fraction)): found[name]
                            for fraction, found in card["fractions"].items()
                            for name in ("train_images", "final_loss")})
    for fraction, found in card["fractions"].items():
        print(f"train-filter: fraction {fraction:g}: {found['train_images']} training images, "
              f"{card['epochs']} epochs, final loss {found['final_loss']:.3f} -> "
              f"{filter_folder(config, fraction)}")
