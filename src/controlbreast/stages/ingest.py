"""``controlbreast ingest``: source data → ``paths.prepared`` (images, masks, manifest)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.data.ingest import ingest, rejection_counts, split_counts
from controlbreast.outputs import write_atomic
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Ingest the configured source; log counts to MLflow and ``<paths.metrics>/ingest.json``."""
    config = load_config(params)
    with stage_run(config, "ingest", ("seed", "data", "phantom")):
        start = time.perf_counter()
        rows, rejected = ingest(config)
        seconds = time.perf_counter() - start
        counts = split_counts(rows)
        mlflow.log_metrics({"images": len(rows), "rejected": len(rejected),
                            "images_per_second": len(rows) / seconds,
                            **{f"count/{key}": value for key, value in counts.items()}})
    reasons = rejection_counts(rejected)
    metrics = {"images": len(rows), "rejected": len(rejected), "rejected_by_reason": reasons,
               "counts": counts}
    write_atomic(Path(config.paths.metrics) / "ingest.json", json.dumps(metrics, indent=2).encode())
    listed = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
    print(f"ingest: {len(rows)} images, {len(rejected)} rejected{f' ({listed})' if listed else ''}, "
          f"{seconds:.1f} s -> {config.paths.prepared}")
