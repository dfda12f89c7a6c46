"""``controlbreast check``: params x data in seconds, before any training (``data/check.py``)."""

from __future__ import annotations

import time
from pathlib import Path

from controlbreast.config import load_config
from controlbreast.data.check import require_clean
from controlbreast.data.splits import SPLITS


def main(params: Path) -> None:
    """Print every problem (one ``ConfigError``, exit non-zero) or what the data will give."""
    start = time.perf_counter()
    config = load_config(params)
    counts = require_clean(config, str(params)).counts
    per_split = ", ".join(f"{split} {sum(n for (s, _), n in counts.items() if s == split)}"
                          for split in SPLITS)
    print(f"check: no problem with {params} and its data ({per_split} images expected); "
          f"{time.perf_counter() - start:.1f} s")
