"""What each arm trains on. Validation is always the real validation split; test is never read here.

Arms (``ARMS``, each a recipe in ``BUILT_IN``):

- ``real``: the real training split, with classic augmentation (``classifier.augment``: flips,
  shifts, rotations, scale, contrast, noise) — the baseline that synthetic images must beat.
- ``real-noaug``: the same images with no augmentation at all, so that the table separates what
  classic augmentation buys (``real − real-noaug``) from what synthetic images add on top of it.
- ``real+synthetic``: the real training split plus ``round(mix_ratio * n_c)`` synthetic images of
  each class c (``n_c`` its real training images; ``classifier.synthetic_draw: pooled`` draws
  ``round(mix_ratio * n_real)`` from the whole set instead), drawn without replacement from
  ``paths.synthetic`` with the run's seed, so each seed sees another draw.
- ``synthetic``: as many synthetic images per class as the real split has and no real image (train
  on synthetic, test on real), so this arm differs from ``real`` in the source of its images only.

``classifier.recipes`` adds named arms composed of the same parts (``RecipeConfig``): real images
once, ``repeat``-ed to the ``real+synthetic`` count (the same-count control: drawn per class exactly
as the synthetic images would be), or none; synthetic images ``all`` or ``filtered`` (kept by the
label-consistency filter, ``filter-synthetic``) or ``guided`` (the real-guided set,
``paths.synthetic_guided``: each image started from its source real image); mixed, or ``pretrain``
on the synthetic images and fine-tune on the real ones.

A synthetic image made from the control of a validation or test image would leak that image into
training, so every synthetic image's ``control_id`` must be a real training id.

Data efficiency (``classifier.real_fractions``): with ``fraction`` < 1, ``real``,
``real+synthetic`` and every recipe use the nested subset of the real training split of that fraction
(``training_subsets``), and an arm with synthetic images draws them (per class, by the subset's
counts) only among those whose ``control_id`` is in the subset: a synthetic image made from an image
outside it would carry that real image's information into a "fraction of the data" arm.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controlbreast.classify.config import RecipeConfig
from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import FilterRow, PreparedRow, SyntheticRow, read_manifest
from controlbreast.data.subsets import fraction_config, subset_ids
from controlbreast.errors import DataError, MissingInputError
from controlbreast.mixing import FRACTION_ARMS, NO_AUGMENTATION, fraction_arm, per_class_draws

# the built-in arms as recipes: ``synthetic`` draws as many synthetic images per class as the real split has
BUILT_IN = {"real": RecipeConfig(synthetic="none"),
            NO_AUGMENTATION: RecipeConfig(synthetic="none", augment=False),
            "real+synthetic": RecipeConfig(), "synthetic": RecipeConfig(real="none", mix_ratio=1.0)}


@dataclass(frozen=True)
class TrainingData:
    """``train``: what the model learns from; ``val``: real validation images for selection;
    ``pretrain``: what it learns from first, alone (a ``schedule: pretrain`` recipe), or None."""

    train: ImageSet
    val: ImageSet
    real_images: int
    synthetic_images: int
    pretrain: ImageSet | None = None


def concatenate(first: ImageSet, second: ImageSet) -> ImageSet:
    """Both sets in one, first then second (same classes, same image size)."""
    if first.images.shape[1:] != second.images.shape[1:]:
        raise DataError(f"synthetic images are {second.images.shape[2]}x{second.images.shape[1]} px "
                         f"but the real ones {first.images.shape[2]}x{first.images.shape[1]}")
    return ImageSet(ids=first.ids + second.ids, labels=np.concatenate([first.labels, second.labels]),
                    splits=first.splits + second.splits,
                    images=np.concatenate([first.images, second.images]), classes=first.classes)


def check_provenance(folder: Path, train_ids: set[str]) -> None:
    """Every synthetic image must come from a training-split control; raise naming the others."""
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    outside = sorted({row.control_id for row in rows} - train_ids)
    if outside:
        raise DataError(f"{folder}: {len(outside)} synthetic images come from controls outside the "
                         f"training split (a leak into validation/test), e.g. {outside[:5]}")


def draw_counts(labels: Sequence[str], ratio: float, mode: str) -> dict[str | None, int]:
    """How many extra images an arm adds to real images of ``labels``: per class
    (``round(ratio * n_c)``, ``classifier.synthetic_draw: per_class``) or in all (``None`` key,
    ``round(ratio * n)``, ``pooled``)."""
    if mode == "pooled":
        return {None: round(ratio * len(labels))}
    return per_class_draws(Counter(labels), ratio)


def choose(pool: Sequence[str], counts: dict[str | None, int], rng: np.random.Generator,
           repeat: bool = False, why: str = "") -> np.ndarray:
    """Sorted positions in ``pool`` (the labels of the candidates) drawn to ``counts``
    (``draw_counts``) without replacement; ``repeat`` lets a class go round again when it has
    fewer candidates than its count (each candidate once per round, the last round a draw)."""
    chosen = []
    for label, count in counts.items():
        if not count:
            continue
        members = np.flatnonzero([label is None or p == label for p in pool])
        if count > len(members) and not (repeat and len(members)):
            which = "" if label is None else f" of class {label!r}"
            raise DataError(f"{count} images{which} needed but only {len(members)} there"
                            f"{f' ({why})' if why else ''}")
        rounds, rest = divmod(count, len(members)) if repeat else (0, count)
        chosen += [*np.tile(members, rounds), *rng.choice(members, size=rest, replace=False)]
    return np.sort(np.asarray(chosen, dtype=int))


@dataclass(frozen=True)
class InputView:
    """What a classifier's real training images are: their modality (``mixed`` when the split holds
    both) and whether they are patches cut from films rather than whole images."""

    modality: str
    patches: bool


def input_view(config: Config) -> InputView:
    """The ``InputView`` of the prepared manifest's training split."""
    rows = [row for row in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if row.split == "train"]
    modalities = {row.modality for row in rows}
    return InputView(modalities.pop() if len(modalities) == 1 else "mixed",
                     any(row.patch_kind != "image" for row in rows))


def synthetic_rows(folder: Path, train_ids: set[str], control_ids: set[str]) -> list[int]:
    """Positions in the synthetic manifest of the images made from controls in ``control_ids``,
    after checking that every image comes from the training split (``train_ids``)."""
    check_provenance(folder, train_ids)
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    return [i for i, row in enumerate(rows) if row.control_id in control_ids]


def verdicts_table(config: Config, fraction: float = 1.0) -> Path:
    """The label-consistency filter's verdicts for the arms at ``fraction`` (``filter-synthetic``)."""
    return Path(config.paths.synthetic_filter) / f"{fraction_arm('verdicts', fraction)}.csv"


def kept_ids(config: Config, fraction: float = 1.0) -> set[str]:
    """The synthetic images the filter of ``fraction`` kept; its verdicts must be on exactly the
    images of this set made from that fraction's controls."""
    table = verdicts_table(config, fraction)
    if not table.is_file():
        raise MissingInputError(f"{table}: no filter verdicts (run filter-synthetic) for an arm with "
                                f"synthetic: filtered at fraction {fraction:g}")
    verdicts = read_manifest(table, FilterRow)
    controls = subset_ids(config, fraction)
    made = {row.id for row in read_manifest(Path(config.paths.synthetic) / "manifest.csv", SyntheticRow)
            if row.control_id in controls}
    if {row.id for row in verdicts} != made:
        raise DataError(f"{table}: its verdicts are on another synthetic set or subset than "
                        f"{config.paths.synthetic} at fraction {fraction:g} (run filter-synthetic again)")
    return {row.id for row in verdicts if row.kept}


def recipe(config: Config, arm: str) -> RecipeConfig:
    """The recipe of a built-in arm or a ``classifier.recipes`` entry (``arm@fraction`` too)."""
    name = arm.split("@")[0]
    found = BUILT_IN.get(name) or config.classifier.recipes.get(name)
    if found is None:
        raise ValueError(f"unknown arm {arm!r}; expected one of {[*BUILT_IN, *config.classifier.recipes]}")
    return found


def check_arm(config: Config, arm: str, fraction: float) -> RecipeConfig:
    """``arm``'s recipe, if it may train at ``fraction`` (below 1: ``FRACTION_ARMS`` and recipes)."""
    found = recipe(config, arm)
    if fraction != 1.0 and arm not in (*FRACTION_ARMS, *config.classifier.recipes):
        raise ValueError(f"unknown arm {arm!r} at fraction {fraction:g}; below 1 only "
                         f"{[*FRACTION_ARMS, *config.classifier.recipes]}")
    return found


def draw_synthetic(folder: Path, classes: tuple[str, ...], eligible: Sequence[int],
                   counts: dict[str | None, int], seed: int, why: str = "") -> ImageSet:
    """The synthetic images of ``folder`` drawn to ``counts`` (``draw_counts``) with ``seed`` from the
    manifest positions ``eligible`` (``synthetic_rows``), kept in the set's order; only the drawn
    PNGs are decoded, so a 16,000-image set costs what the draw costs. ``why`` (which arm needs
    them and what to change) completes the error when there are too few."""
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    picked = choose([rows[i].label for i in eligible], counts, np.random.default_rng(seed),
                    why=f"{folder}: {why}" if why else str(folder))
    select = np.asarray(eligible, dtype=int)[picked]
    return load_image_set(folder, classes, schema=SyntheticRow, select=select)


@dataclass(frozen=True)
class ArmPlan:
    """Which images one arm trains on for one seed and fraction, before any is decoded: the real
    training ids (repeated ids for ``real: repeat``) and the synthetic manifest positions, with the
    labels of both (the source–class shortcut probe reads them), and the ratio it drew at."""

    recipe: RecipeConfig
    real_ids: tuple[str, ...]
    real_labels: tuple[str, ...]
    synthetic: np.ndarray
    synthetic_labels: tuple[str, ...]
    ratio: float


def _real_plan(config: Config, fraction: float) -> tuple[list[PreparedRow], list[PreparedRow]]:
    rows = [r for r in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if r.split == "train" and r.label in config.data.classes]
    ids = subset_ids(config, fraction)
    subset = [r for r in rows if r.id in ids]
    return rows, subset


def arm_plan(config: Config, arm: str, seed: int, fraction: float = 1.0) -> ArmPlan:
    """The ``ArmPlan`` of ``arm`` (see the module docstring): extra images per class (or pooled) as
    ``draw_counts`` says, synthetic ones only from controls of the fraction's subset."""
    found, settings = check_arm(config, arm, fraction), config.classifier
    whole, subset = _real_plan(config, fraction)
    labels = [r.label for r in subset]
    ratio = found.mix_ratio or settings.mix_ratio
    pool, eligible = [], []
    if found.synthetic != "none":
        eligible, pool = _eligible(config, found, whole, subset, fraction)
        if found.synthetic == "filtered":
            ratio = kept_ratio(labels, pool, ratio, settings.synthetic_draw)
    counts = draw_counts(labels, ratio, settings.synthetic_draw)
    real_ids = [r.id for r in subset] if found.real != "none" else []
    real_labels = labels if found.real != "none" else []
    if found.real == "repeat":
        extra = choose(labels, counts, np.random.default_rng([seed, 1]), repeat=True)
        real_ids += [subset[i].id for i in extra]
        real_labels += [labels[i] for i in extra]
    positions, synthetic_labels = np.zeros(0, dtype=int), []
    if found.synthetic != "none":
        picked = choose(pool, counts, np.random.default_rng(seed), why=_shortage(config, arm, len(subset)))
        positions = np.asarray(eligible, dtype=int)[picked]
        synthetic_labels = [pool[i] for i in picked]
    return ArmPlan(found, tuple(real_ids), tuple(real_labels), positions, tuple(synthetic_labels), ratio)


def synthetic_folder(config: Config, found: RecipeConfig, fraction: float = 1.0) -> Path:
    """The set a recipe draws its synthetic images from at ``fraction``: below 1 with
    ``classifier.fraction_generator: subset``, the fraction's own (``data.subsets.fraction_config``); else
    the real-guided one for ``synthetic: guided``, or ``paths.synthetic``."""
    if fraction < 1.0 and config.classifier.fraction_generator == "subset":
        return Path(fraction_config(config, fraction).paths.synthetic)
    return Path(config.paths.synthetic_guided if found.synthetic == "guided" else config.paths.synthetic)


def _eligible(config: Config, found: RecipeConfig, whole: list[PreparedRow], subset: list[PreparedRow],
              fraction: float) -> tuple[list[int], list[str]]:
    """Manifest positions the arm may draw from (made from the subset's controls; kept by the
    fraction's filter for ``synthetic: filtered``) and their labels."""
    folder = synthetic_folder(config, found, fraction)
    eligible = synthetic_rows(folder, {r.id for r in whole}, {r.id for r in subset})
    kept = kept_ids(config, fraction) if found.synthetic == "filtered" else None
    return kept_positions(folder, eligible, kept)


def kept_positions(folder: Path, eligible: Sequence[int],
                   kept: set[str] | None) -> tuple[list[int], list[str]]:
    """The manifest positions of ``eligible`` whose image ``kept`` holds (all of them for None), and
    their labels: what a filtered draw may take (``kept_ratio`` then says at which ratio)."""
    rows = read_manifest(Path(folder) / "manifest.csv", SyntheticRow)
    eligible = [i for i in eligible if kept is None or rows[i].id in kept]
    return eligible, [rows[i].label for i in eligible]


def kept_ratio(labels: Sequence[str], pool: Sequence[str], ratio: float, mode: str) -> float:
    """The ratio a filtered arm can draw at: ``ratio``, lowered to what the scarcest class kept
    (per class) or the pool holds (pooled), so the synthetic:real ratio stays equal in every class.
    0 (said on stderr) when the filter kept no image of some class: the arm is then the real one."""
    real, kept = Counter(labels), Counter(pool)
    room = sum(kept.values()) / len(labels) if mode == "pooled" else \
        min(kept[label] / count for label, count in real.items())
    if room <= 0:
        print(f"warning: the label-consistency filter kept no synthetic image of some class (kept: "
              f"{dict(kept)}): the filtered arm draws none; lower synthetic_filter.threshold or improve "
              "the generator", file=sys.stderr)
    return min(ratio, room)


def _shortage(config: Config, arm: str, n_real: int) -> str:
    more = "set generate.per_class: auto (or raise it) and run generate again"
    if arm.split("@")[0] == "synthetic":
        return f"the synthetic arm draws as many as the {n_real} real training images; {more}"
    return (f"{arm} draws round(classifier.mix_ratio {config.classifier.mix_ratio:g} x {n_real} real); "
            f"{more}, or lower classifier.mix_ratio")


def load_training_data(config: Config, arm: str, seed: int, fraction: float = 1.0) -> TrainingData:
    """The train and validation sets of ``arm`` for ``seed`` (see the module docstring)."""
    plan = arm_plan(config, arm, seed, fraction)
    real = load_image_set(config.paths.prepared, config.data.classes, splits=("train", "val"))
    train, val = real.split("train"), real.split("val")
    position = {image_id: i for i, image_id in enumerate(train.ids)}
    train = train.subset([position[i] for i in plan.real_ids])
    if not len(plan.synthetic):
        return TrainingData(train, val, len(train), 0)
    extra = load_image_set(synthetic_folder(config, plan.recipe, fraction), config.data.classes,
                           schema=SyntheticRow, select=plan.synthetic)
    if plan.recipe.schedule == "pretrain":
        return TrainingData(train, val, len(train), len(extra), pretrain=extra)
    return TrainingData(concatenate(train, extra) if len(train) else extra, val, len(train), len(extra))
