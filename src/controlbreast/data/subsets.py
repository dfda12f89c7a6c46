"""The nested subsets of the real training split, one per ``classifier.real_fractions``: what the
data-efficiency arms train on and, with ``classifier.fraction_generator: subset``, their generators.

Here, below both ``generation`` and ``classify``, so that a fraction's generator and its classifier
arms read the very same subset.
"""

from __future__ import annotations

from pathlib import Path

from controlbreast.config import Config
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.data.splits import nested_subsets
from controlbreast.errors import DataError


def training_subsets(config: Config) -> dict[float, frozenset[str]]:
    """The nested subsets of the real training split, one per ``classifier.real_fractions``."""
    rows = [row for row in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if row.split == "train"]
    return nested_subsets([r.id for r in rows], [r.group for r in rows], [r.label for r in rows],
                          config.classifier.real_fractions, config.classifier.subset_seed)


def subset_ids(config: Config, fraction: float) -> frozenset[str]:
    """The real training ids of ``fraction`` (all of them at 1)."""
    if fraction == 1.0:
        rows = read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
        return frozenset(r.id for r in rows if r.split == "train")
    subsets = training_subsets(config)
    if fraction not in subsets:
        raise DataError(f"fraction {fraction:g} is not one of classifier.real_fractions "
                        f"{list(config.classifier.real_fractions)}")
    return subsets[fraction]
