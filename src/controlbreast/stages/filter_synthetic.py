"""``controlbreast filter-synthetic``: each synthetic image's verdict under the label-consistency filter
of each real fraction → ``<paths.synthetic_filter>/verdicts[@<fraction>].csv`` and
``<paths.metrics>/synthetic_filter.json``."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.filtering import filter_synthetic
from controlbreast.outputs import write_atomic
from controlbreast.tracking import metric_numbers, stage_run
from controlbreast.tuning.tuned import apply_tuned, overrides, tuned_values


def main(params: Path) -> None:
    """Score the set at τ (the tuned one when ``tune.filter_threshold`` was searched); log and print
    the kept counts per class."""
    config = load_config(params)
    tuned = {k: v for k, v in tuned_values(config).items() if k == "filter_threshold"}
    for line in overrides(config, tuned, params):
        print(f"filter-synthetic: {line}")
    config = apply_tuned(config, tuned)
    with stage_run(config, "filter_synthetic", ("synthetic_filter", "synthetic_eval"),
                   data=("training", "synthetic")):
        mlflow.log_params({f"tuned.{key}": value for key, value in tuned.items()})
        summary = filter_synthetic(config)
        mlflow.log_metrics(metric_numbers(summary))
    write_atomic(Path(config.paths.metrics) / "synthetic_filter.json",
                 (json.dumps(summary, indent=2) + "\n").encode())
    for fraction, found in {"1": summary, **summary["fractions"]}.items():
        kept = ", ".join(f"{name} {c['kept']}/{c['made']}" for name, c in found["per_class"].items())
        print(f"filter-synthetic: fraction {fraction}: kept {found['kept']} of {found['images']} at "
              f"probability >= {summary['threshold']:g} ({kept}); {found['likely_copies']} likely copies")
