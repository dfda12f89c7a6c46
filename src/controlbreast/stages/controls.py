"""``controlbreast controls``: prepared images → ``paths.controls`` (edge maps and/or masks)."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.controls.build import make_controls
from controlbreast.controls.preview import control_preview
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Build the controls and log a preview grid (image | channels) to MLflow."""
    config = load_config(params)
    with stage_run(config, "controls", ("controls",)):
        start = time.perf_counter()
        rows = make_controls(config)
        seconds = time.perf_counter() - start
        mlflow.log_metrics({"controls": len(rows), "images_per_second": len(rows) / seconds})
        grid = control_preview(config.paths.prepared, config.paths.controls, rows,
                               config.controls.channels)
        mlflow.log_image(grid, "controls_preview.png")
    print(f"controls: {len(rows)} {config.controls.kind} controls, {seconds:.1f} s "
          f"-> {config.paths.controls}")
