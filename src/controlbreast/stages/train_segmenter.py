"""``controlbreast train-segmenter``: the lesion segmenter on the real training masks →
``<paths.models>/segmenter/`` and ``<paths.metrics>/segmenter.json``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.segmenter import train_segmenter
from controlbreast.tracking import metric_numbers, stage_run


def main(params: Path) -> None:
    """Train the segmenter; log its validation Dice (own vs shuffled masks) to MLflow."""
    config = load_config(params)
    with stage_run(config, "train_segmenter", ("segmenter",)):
        card = train_segmenter(config)
        mlflow.log_metrics(metric_numbers(card))
    if "val_dice" not in card:
        print("train-segmenter: no lesion masks in the training split; evaluate-synthetic will skip "
              "lesion placement")
        return
    dice = card["val_dice"]
    print(f"train-segmenter: {card['train_masks']} training masks; validation Dice "
          f"{dice.get('matched', float('nan')):.3f} with own masks vs "
          f"{dice.get('shuffled', float('nan')):.3f} "
          f"shuffled within class ({card['seconds']:.1f} s)")
