"""The nested subsets of the real training split, one per ``classifier.real_fractions``: what the
data-efficiency arms train on and, with ``classifier.fraction_generator: subset``, what their own
generators train on, and where those generators and their sets live.

Here, below both ``generation`` and ``classify``, so that a fraction's generator and its classifier
arms read the very same subset and folders without ``classify`` importing the diffusion code.
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


def fraction_folder(config: Config, fraction: float) -> Path:
    """``<paths.fraction_generators>/<fraction>``: the generator of ``fraction`` and its set."""
    return Path(config.paths.fraction_generators) / f"{fraction:g}"


def fraction_config(config: Config, fraction: float) -> Config:
    """The settings under which ``fraction``'s generator trains and draws: its own models and set
    folders, and checkpoints apart from the whole split's."""
    folder = fraction_folder(config, fraction)
    return config.model_copy(update={"paths": config.paths.model_copy(update={
        "models": folder, "synthetic": folder / "synthetic",
        "checkpoints": Path(config.paths.checkpoints) / f"fraction-{fraction:g}"})})
