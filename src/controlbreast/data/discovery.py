"""Listing a source's candidates and checking their labels against ``data.classes``.

``discover`` finds the candidates of the configured source (phantom, BUSI folder or CSV manifest)
without reading pixels; the class checks catch a ``data.classes`` entry that no source label
matches (a typo would silently leave a class out) and leave out labels mapped to no class.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlbreast.config import Config
from controlbreast.data.config import DataConfig, PhantomConfig
from controlbreast.data.phantom import phantom_candidates
from controlbreast.data.phantom_mammo import mammo_phantom_candidates
from controlbreast.data.records import Candidate, Rejection
from controlbreast.data.sources import busi_candidates, csv_candidates, source_labels
from controlbreast.errors import ConfigError, SampleError


def discover(cfg: DataConfig, phantom_cfg: PhantomConfig) -> tuple[list[Candidate], list[SampleError]]:
    """Candidates of the configured source, sorted by source path, and discovery problems."""
    if cfg.source == "phantom" and phantom_cfg.modality == "mammography":
        found, errors = mammo_phantom_candidates(phantom_cfg), []
    elif cfg.source == "phantom":
        found, errors = phantom_candidates(phantom_cfg), []
    elif cfg.source == "busi":
        found, errors = busi_candidates(cfg)
    else:
        found, errors = csv_candidates(cfg)
    return sorted(found, key=lambda c: c.source_path), errors


def source_name(cfg: DataConfig) -> str:
    """The source as a reader finds it on disk: the CSV manifest, the BUSI folder or the phantom."""
    return {"csv": f"manifest {cfg.manifest}", "busi": f"folder {cfg.root}"}.get(cfg.source, "the phantom")


def missing_classes(source_labels: Iterable[str], cfg: DataConfig) -> str | None:
    """Why a ``data.classes`` entry matches no label of the source (itself, or through
    ``data.label_map``), or None: a typo (``malignnat``) would leave a whole class out, listed only
    as unmapped labels. Patches supply ``patches.background_label`` themselves."""
    labels = sorted(set(source_labels))
    found = {cfg.to_class(label) for label in labels}
    if cfg.patches.enabled:
        found.add(cfg.patches.background_label)
    missing = [name for name in cfg.classes if name not in found]
    if not labels or not missing:
        return None
    return (f"data.classes entr{'y' if len(missing) == 1 else 'ies'} "
            f"{', '.join(map(repr, missing))} match{'es' if len(missing) == 1 else ''} no "
            f"label in {source_name(cfg)} (labels found: {', '.join(labels)}); fix the "
            "entry or map a label to it with data.label_map")


def check_classes(source_labels: Iterable[str], cfg: DataConfig) -> None:
    """``missing_classes`` as a ``ConfigError``."""
    if problem := missing_classes(source_labels, cfg):
        raise ConfigError(problem)


def check_source_classes(config: Config) -> None:
    """``check_classes`` against the labels of the source where it is found here (without
    building candidates, see ``source_labels``; nothing when it is not here): what ``overlay``
    checks before it writes params that ingest would refuse (``malignent`` for ``malignant``)."""
    labels = source_labels(config.data)
    if labels is not None:
        check_classes(labels, config.data)


def exclude_unmapped(candidates: list[Candidate], cfg: DataConfig) -> tuple[
        list[Candidate], list[Rejection]]:
    """Leave out candidates whose label maps to no class: the user chose ``data.classes``, so a
    label outside it (``classes: [normal, malignant]`` on three-class data) is excluded and
    listed, not an error."""
    kept, excluded = [], []
    for candidate in candidates:
        if cfg.to_class(candidate.source_label) is None:
            excluded.append(Rejection(candidate.source_path, f"label {candidate.source_label!r} maps "
                                      f"to no class of data.classes {list(cfg.classes)} (left out; "
                                      "map it with data.label_map to use it)", "excluded_label"))
        else:
            kept.append(candidate)
    return kept, excluded

