"""``controlbreast ingest``: source data → ``paths.prepared`` (images, masks, manifest)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.data.check import require_clean
from controlbreast.data.ingest import rejection_counts, run_ingest, split_counts
from controlbreast.outputs import write_atomic
from controlbreast.tracking import stage_run


def main(params: Path) -> None:
    """Check params x data (``controlbreast check``), then ingest the configured source; log counts
    to MLflow and ``<paths.metrics>/ingest.json``."""
    config = load_config(params)
    require_clean(config, str(params))
    with stage_run(config, "ingest", ("seed", "data", "phantom"),
                   data=("training", "validation", "test")):
        start = time.perf_counter()
        result = run_ingest(config)
        rows, rejected = result.rows, result.rejected
        seconds = time.perf_counter() - start
        counts = split_counts(rows)
        mlflow.log_metrics({"images": len(rows), "rejected": len(rejected),
                            "images_per_second": len(rows) / seconds,
                            **{f"count/{key}": value for key, value in counts.items()},
                            **{f"near_duplicates/{key}": value for key, value in result.merges.items()}})
    reasons = rejection_counts(rejected)
    metrics = {"images": len(rows), "rejected": len(rejected), "rejected_by_reason": reasons,
               "counts": counts, "near_duplicates": result.merges}
    write_atomic(Path(config.paths.metrics) / "ingest.json", json.dumps(metrics, indent=2).encode())
    listed = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
    print(f"ingest: {len(rows)} images, {len(rejected)} rejected{f' ({listed})' if listed else ''}, "
          f"{seconds:.1f} s -> {config.paths.prepared}")
    merges = result.merges
    if merges["confirmed_pairs"] or merges["rejected_by_similarity"]:
        print(f"ingest: near-duplicates: {merges['confirmed_pairs']} pair(s) merged "
              f"({merges['pairs_across_patients']} across patients, largest group "
              f"{merges['largest_group_images']} images), {merges['rejected_by_similarity']} hash "
              "match(es) kept apart by pixel similarity")
