"""Headline metrics in a small file that reads well in a terminal (``dvc metrics show``).

Each stage's metrics file holds every number it computes (hundreds of keys once intervals and
per-seed results are in), so ``dvc metrics show`` prints one unreadable row. A stage also writes
its few headline numbers here, one small JSON file per stage (``<metrics>/summary/<stage>.json``:
a DVC output must belong to one stage), flat and rounded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from controlbreast.outputs import write_atomic

SUMMARY_FOLDER = "summary"


def headline(values: Mapping[str, object], digits: int = 3) -> dict[str, object]:
    """``values`` flattened (``a/b`` keys) with floats rounded to ``digits``, NaN as None."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat |= {f"{key}/{inner}": item for inner, item in headline(value, digits).items()}
        elif isinstance(value, float):
            flat[key] = round(value, digits) if math.isfinite(value) else None
        else:
            flat[key] = value
    return flat


def write_summary(metrics_dir: Path, stage: str, values: Mapping[str, object]) -> Path:
    """Write ``<metrics_dir>/summary/<stage>.json`` (sorted keys, deterministic bytes); returns it."""
    path = Path(metrics_dir) / SUMMARY_FOLDER / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(headline(values), indent=1, sort_keys=True) + "\n").encode())
    return path
