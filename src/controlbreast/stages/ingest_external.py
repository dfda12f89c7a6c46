"""``controlbreast ingest-external``: each ``evaluate.external`` set, test-only, into
``<paths.external>/<name>/``, gated, with its near-duplicates of the training data listed →
``<paths.metrics>/external.json``."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.external import ingest_external
from controlbreast.outputs import write_atomic
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Ingest every external set; log and write the counts; print one line per set."""
    config = load_config(params)
    Path(config.paths.external).mkdir(parents=True, exist_ok=True)  # a DVC output, maybe empty
    with stage_run(config, "ingest_external", ("evaluate",), data=("external",)):
        report = {external.name: ingest_external(config, external) for external in config.evaluate.external}
        for name, found in report.items():
            mlflow.log_metrics({f"{name}.images": found["images"],
                                f"{name}.near_duplicates_of_training": found["near_duplicates_of_training"]})
    write_atomic(Path(config.paths.metrics) / "external.json", (json.dumps(report, indent=2) + "\n").encode())
    for name, found in report.items():
        counts = {key.split("/", 1)[1]: n for key, n in found["classes"].items()}
        absent = [c for c in config.data.classes if c not in counts]
        classes = ", ".join(f"{counts[c]} {c}" for c in config.data.classes if c in counts)
        print(f"ingest-external: {name} ({found['source']}): {found['images']} images ({classes}"
              f"{'; no ' + ', '.join(absent) if absent else ''}), {found['near_duplicates_of_training']} "
              f"near-duplicates of training images (excluded from evaluation) -> "
              f"{Path(config.paths.external) / name}")
