"""``controlbreast train-filter``: the label-consistency filter's classifier, on the real training split
alone for a fixed number of epochs → ``<paths.models>/filter/``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.filtering import filter_folder, train_filter
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Train the filter; log its training size and final loss."""
    config = load_config(params)
    with stage_run(config, "train_filter", ("classifier", "synthetic_filter")):
        card = train_filter(config)
        mlflow.log_metrics({"train_images": card["train_images"], "final_loss": card["final_loss"]})
    print(f"train-filter: {card['train_images']} training images, {card['epochs']} epochs, final loss "
          f"{card['final_loss']:.3f} -> {filter_folder(config)}")
