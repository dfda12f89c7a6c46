"""``controlbreast generate``: the synthetic set → ``paths.synthetic``."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.generation.generate import generate_set, shortfall, training_rows
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Generate the configured synthetic set; log its params, counts and timing to MLflow."""
    config = load_config(params)
    problem = shortfall(config, training_rows(config.paths.prepared))
    if problem:  # a warning, not an error: evaluate-synthetic alone can use a smaller set
        print(f"generate: warning: {problem}", file=sys.stderr)
    with stage_run(config, "generate", ("seed", "generate", "sampling", "controls")):
        summary = generate_set(config)
        mlflow.log_metrics(summary)
    print(f"generate: {summary['images']} images from {summary['controls_used']} training controls in "
          f"{summary['seconds']:.1f} s ({summary['images_per_second']:.1f} images/s) "
          f"-> {config.paths.synthetic}")
