"""``controlbreast ingest``: source data → ``paths.prepared`` (images, masks, manifest)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.data.ingest import ingest, split_counts
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
    metrics = {"images": len(rows), "rejected": len(rejected), "counts": counts}
    write_atomic(Path(config.paths.metrics) / "ingest.json", json.dumps(metrics, indent=2).encode())
    print(f"ingest: {len(rows)} images, {len(rejected)} rejected, {seconds:.1f} s "
          f"-> {config.paths.prepared}")
