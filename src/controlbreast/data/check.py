"""Preflight: params x data in seconds, before any image is decoded or any model trained.

What would otherwise stop a run late (``tune`` after both diffusion trainings, ``evaluate`` after
every classifier) is decided here from what listing the source tells: its labels, groups, mask
files, pixel spacings (DICOM headers only, never pixels) and the splits ``assign_splits`` will
draw from them. Each problem is one line naming the key and a value that would work; all are
listed together. ``controlbreast check`` prints them; ``ingest`` refuses to start with any.

The split sizes are those of the listed inputs: exact duplicates and near-duplicates that ingest
later drops or merges can only make them a little smaller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controlbreast.config import Config
from controlbreast.data.config import GROUP_SECRET_ENV, DataConfig, PhantomConfig
from controlbreast.data.discovery import discover, missing_classes
from controlbreast.data.imageio import DICOM_SUFFIXES, DicomTags, read_dicom_tags
from controlbreast.data.privacy import group_key
from controlbreast.data.records import Candidate
from controlbreast.data.splits import SPLITS, assign_splits
from controlbreast.errors import ConfigError, ControlBreastError
from controlbreast.evaluation.config import ExternalSetConfig
from controlbreast.mixing import generate_shortfall, tune_mix_problem


@dataclass(frozen=True)
class Listed:
    """The inputs of one source as listing finds them: candidates (sorted), the problems found while
    listing, each candidate's DICOM header tags (empty for rasters and the phantom) and modality."""

    candidates: list[Candidate]
    errors: list[str]
    tags: list[DicomTags]
    modalities: list[str]


def external_config(config: Config, external: ExternalSetConfig) -> Config:
    """``config`` with ``data`` pointing at the external source and ``paths.prepared`` at its folder."""
    data = config.data.model_copy(update={"source": external.source, "root": external.root,
                                          "manifest": external.manifest,
                                          "label_map": external.label_map or config.data.label_map})
    paths = config.paths.model_copy(update={"prepared": Path(config.paths.external) / external.name})
    return config.model_copy(update={"data": data, "phantom": external.phantom, "paths": paths})


def _tags(cfg: DataConfig, candidate: Candidate) -> DicomTags:
    if cfg.source == "phantom" or Path(candidate.source_path).suffix.lower() not in DICOM_SUFFIXES:
        return DicomTags()
    return read_dicom_tags(Path(cfg.root) / candidate.source_path)


def _modality(cfg: DataConfig, phantom: PhantomConfig, tags: DicomTags) -> str:
    """What ingest will take an input for (``prepare.modality_of``), from its header alone."""
    if cfg.modality != "auto":
        return cfg.modality
    if cfg.source == "phantom":
        return phantom.modality
    return "mammography" if tags.modality == "MG" else "ultrasound"


def list_inputs(cfg: DataConfig, phantom: PhantomConfig) -> Listed:
    """List ``cfg``'s source; a source that cannot be listed at all raises ``ControlBreastError``."""
    candidates, errors = discover(cfg, phantom)
    tags = [_tags(cfg, c) for c in candidates]
    return Listed(candidates, [str(e) for e in errors], tags, [_modality(cfg, phantom, t) for t in tags])


def listing_problems(listed: Listed, cfg: DataConfig) -> list[str]:
    """Bad inputs found while listing, which stop an ``on_error: fail`` ingest."""
    if not listed.errors or cfg.on_error == "skip":
        return []
    more = f" (and {len(listed.errors) - 1} more)" if len(listed.errors) > 1 else ""
    return [f"data.on_error fail: {listed.errors[0]}{more}; fix the input, or set data.on_error: skip "
            "to leave such inputs out"]


def mask_problems(listed: Listed, cfg: DataConfig, control_channels: Sequence[str]) -> list[str]:
    """Lesion images without a mask file while ``data.require_lesion_masks``; mask controls of a
    source without masks."""
    problems = []
    named = [c for c in listed.candidates if c.has_mask is not None and cfg.to_class(c.source_label)]
    lacking = [c for c in named if not c.has_mask and c.source_label in cfg.lesion_labels]
    if cfg.require_lesion_masks and lacking:
        problems.append(f"data.require_lesion_masks true: {len(lacking)} image(s) of lesion labels "
                        f"{list(cfg.lesion_labels)} have no mask (first {lacking[0].source_path}); add "
                        "their mask_path, or set data.require_lesion_masks: false (edges-only controls)")
    if "mask" in control_channels and named and not any(c.has_mask for c in named):
        problems.append(f"controls.kind needs lesion masks, but none of the {len(named)} images has "
                        "one: set controls.kind: edges")
    return problems


def spacing_problems(listed: Listed, cfg: DataConfig) -> list[str]:
    """Films whose pixel spacing ``data.patches.mm_per_px`` needs and nothing gives."""
    if not cfg.patches.enabled or cfg.patches.mm_per_px is None or cfg.source == "phantom" \
            or cfg.pixel_spacing_mm:
        return []
    unknown = [c for c, t, m in zip(listed.candidates, listed.tags, listed.modalities, strict=True)
               if m == "mammography" and not (c.spacing_mm or t.spacing_mm)]
    if not unknown:
        return []
    column = f"add a pixel_spacing_mm column to {cfg.manifest}, " if cfg.source == "csv" else ""
    return [f"data.patches.mm_per_px {cfg.patches.mm_per_px:g} needs each film's pixel spacing, but "
            f"{len(unknown)} of {len(listed.candidates)} have none (first {unknown[0].source_path}): set "
            f"data.pixel_spacing_mm (e.g. 0.07), {column}or set data.patches.mm_per_px: null to size "
            "patches by data.patches.breast_fraction"]


def secret_problems(listed: Listed, cfg: DataConfig) -> list[str]:
    """Patient ids in DICOM headers, or ``data.anonymise_paths``, without a secret to key them."""
    if cfg.source == "phantom" or group_key(cfg) is not None:
        return []
    fix = f"set {GROUP_SECRET_ENV} (any secret string) or data.allow_unkeyed_groups: true"
    problems = []
    patients = [c for c, t in zip(listed.candidates, listed.tags, strict=True) if t.patient]
    if patients:
        problems.append(f"{len(patients)} DICOM file(s) carry a PatientID (first {patients[0].source_path}) "
                        f"but there is no secret to hash it with: {fix}")
    if cfg.anonymise_paths:
        problems.append(f"data.anonymise_paths true needs a secret: {fix}")
    return problems


def expected_counts(listed: Listed, cfg: DataConfig, seed: int) -> Counter:
    """Rows per (split, class) ingest will write: whole images, or with ``data.patches`` one lesion
    patch per lesion image and ``patches.background`` background patches per film."""
    kept = [(c, m) for c, m in zip(listed.candidates, listed.modalities, strict=True)
            if cfg.to_class(c.source_label) is not None]
    if not kept:
        return Counter()
    labels = [cfg.to_class(c.source_label) for c, _ in kept]
    groups = [c.group or c.source_path for c, _ in kept]
    splits = assign_splits(groups, labels, (cfg.split.train, cfg.split.val, cfg.split.test), seed)
    counts: Counter = Counter()
    for (candidate, modality), label, split in zip(kept, labels, splits, strict=True):
        if modality == "mammography" and cfg.patches.enabled:
            counts[split, cfg.patches.background_label] += cfg.patches.background
            if candidate.source_label in cfg.lesion_labels:
                counts[split, label] += 1
        else:
            counts[split, label] += 1
    return counts


def split_problems(counts: Counter, classes: Sequence[str]) -> list[str]:
    """A class missing from a split: no training image to learn it, no test image to score it."""
    problems = []
    for label in classes:
        total = sum(counts[s, label] for s in SPLITS)
        empty = [s for s in SPLITS if not counts[s, label]]
        if total and empty:
            problems.append(f"data.split gives class {label!r} no {'/'.join(empty)} image ({total} in "
                            "all; each split needs at least one): add images of it, or leave it out of "
                            "data.classes")
    return problems


def quota_problems(config: Config, counts: Counter) -> list[str]:
    """Every count a later stage draws, against the training split's size per class."""
    classes = config.data.classes
    train = {c: counts["train", c] for c in classes}
    n_train = sum(train.values())
    if not n_train:
        return []
    problems = []
    if config.tune.n_trials and (problem := tune_mix_problem(config.tune, len(classes), n_train)):
        problems.append(problem)
    low = config.tune.mix_ratio.low
    scarcest = min((c for c in classes if train[c]), key=train.__getitem__)
    if config.tune.n_trials and config.classifier.synthetic_draw == "per_class" \
            and round(low * train[scarcest]) == 0:
        problems.append(f"tune.mix_ratio.low {low:g} draws no synthetic image of class {scarcest!r} "
                        f"({train[scarcest]} training images): set tune.mix_ratio.low to at least "
                        f"{0.5 / train[scarcest]:.3g}")
    if problem := generate_shortfall(config, train):
        problems.append(problem)
    for fraction in (f for f in config.classifier.real_fractions if f < 1.0):
        if round(fraction * train[scarcest]) == 0:
            problems.append(f"classifier.real_fractions {fraction:g} gives class {scarcest!r} no image "
                            f"of its {train[scarcest]} training ones (one patient would stand in): use "
                            f"at least {0.5 / train[scarcest]:.2g}")
    return problems


def external_problems(config: Config, external: ExternalSetConfig, modality: str | None) -> list[str]:
    """An external set that cannot be listed, shares no class with ``data.classes``, or holds
    another modality than the training data's ``modality`` (None: not known). An external set's
    own modality is its phantom's, or its DICOM headers' Modality; PNGs state none."""
    own = external_config(config, external)
    where = f"evaluate.external {external.name!r}"
    try:
        listed = list_inputs(own.data, own.phantom)
    except ControlBreastError as error:
        return [f"{where}: {error}"]
    labels = sorted({c.source_label for c in listed.candidates})
    problems = []
    if listed.candidates and not any(own.data.to_class(label) for label in labels):
        problems.append(f"{where}: none of its labels {labels} is in data.classes "
                        f"{list(config.data.classes)}: give it a label_map")
    declared = ({own.phantom.modality} if external.source == "phantom" else
                {_modality(own.data.model_copy(update={"modality": "auto"}), own.phantom, t)
                 for t in listed.tags if t.modality})
    other = sorted(declared - {modality}) if modality else []
    if other:
        fix = (f"set its phantom.modality: {modality}" if external.source == "phantom"
               else f"give it {modality} images")
        problems.append(f"{where} holds {', '.join(other)} images but the training data is {modality}: "
                        f"{fix}, or leave it out of evaluate.external")
    return problems


@dataclass(frozen=True)
class Preflight:
    """What ``preflight`` found: one line per problem, and the rows per (split, class) expected."""

    problems: list[str]
    counts: Counter


def data_modality(listed: Listed) -> str | None:
    """The modality most listed inputs will be ingested as (None: no input)."""
    found = Counter(listed.modalities)
    return found.most_common(1)[0][0] if found else None


def preflight(config: Config) -> Preflight:
    """Every problem of ``config`` with its data, one line each (none: nothing found)."""
    cfg = config.data
    try:
        listed = list_inputs(cfg, config.phantom)
    except ControlBreastError as error:
        return Preflight([str(error)], Counter())
    problems = listing_problems(listed, cfg)
    if missing := missing_classes((c.source_label for c in listed.candidates), cfg):
        problems.append(missing)
    problems += mask_problems(listed, cfg, config.controls.channels)
    problems += spacing_problems(listed, cfg)
    problems += secret_problems(listed, cfg)
    counts = expected_counts(listed, cfg, config.seed)
    problems += split_problems(counts, cfg.classes)
    problems += quota_problems(config, counts)
    for external in config.evaluate.external:
        problems += external_problems(config, external, data_modality(listed))
    return Preflight(problems, counts)


def require_clean(config: Config, source: str = "params.yaml") -> Preflight:
    """``preflight``, its problems raised as one ``ConfigError`` listing them all."""
    found = preflight(config)
    problems = found.problems
    if problems:
        listed = "\n".join(f"  {line}" for line in problems)
        raise ConfigError(f"{len(problems)} problem(s) with {source} and its data (`controlbreast check`):\n"
                          f"{listed}")
    return found
