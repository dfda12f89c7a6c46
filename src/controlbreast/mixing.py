"""How the classifier arms mix real and synthetic images: what generation must make for them.

A leaf module, so that ``generation`` (which sizes the set), ``classify`` (which draws from it),
``tuning`` (whose trials draw from their own sets) and the preflight ``check`` (which runs before any
of them) agree on one rule without one importing the other.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from controlbreast.config import Config
from controlbreast.errors import ConfigError, DataError
from controlbreast.tuning.config import TuneConfig

ARMS = ("real", "real-noaug", "real+synthetic", "synthetic")
FRACTION_ARMS = ("real", "real+synthetic")  # trained again on each classifier.real_fractions below 1
FRACTIONS = "fractions"  # <paths.classifiers>/fractions/<arm>@<fraction>/: the data-efficiency arms
NO_AUGMENTATION = "real-noaug"  # the real arm without classic augmentation (flips, warps, contrast, noise)
RECIPES = "recipes"  # <paths.classifiers>/recipes/<recipe>[@<fraction>]/: classifier.recipes' arms


def per_class_draws(real_counts: Mapping[str, int], ratio: float) -> dict[str, int]:
    """Synthetic images of each class for ``ratio`` synthetic per real image *in every class*:
    ``round(ratio * n_c)``, so that being synthetic says nothing about the class (a source that
    correlates with the class is a shortcut the classifier learns instead of the disease)."""
    return {label: round(ratio * count) for label, count in real_counts.items()}


def synthetic_needed(train_labels: Sequence[str], classes: Sequence[str], mix_ratio: float) -> dict[str, int]:
    """Synthetic images per class (``generate.per_class: auto``) that let every arm draw its count.

    Arms draw class by class in the real training split's proportions (``per_class_draws``), so the
    set takes those proportions: the ``synthetic`` arm (ratio 1) and ``real+synthetic`` (``mix_ratio``)
    both find their per-class counts. Recipes with their own ratio may need a larger fixed set.
    """
    counts = Counter(train_labels)
    if not sum(counts[c] for c in classes):
        raise DataError("the prepared manifest has no training image of the configured classes")
    ratio = max(1.0, mix_ratio)
    return {c: math.ceil(ratio * counts[c] - 1e-9) if counts[c] else 0 for c in classes}


def fraction_arm(arm: str, fraction: float) -> str:
    """The name of ``arm`` trained on ``fraction`` of the real training split: ``real@0.5``; the
    plain arm name at fraction 1."""
    return arm if fraction == 1.0 else f"{arm}@{fraction:g}"


def tune_per_class(tune: TuneConfig, n_classes: int, real_images: int) -> int:
    """Synthetic images per class of a tuning trial's set: ``tune.per_class``, or with ``auto`` the
    fewest that let ``tune.mix_ratio.high`` draw its ``round(high x real_images)`` images."""
    if tune.per_class != "auto":
        return tune.per_class
    return max(1, math.ceil(round(tune.mix_ratio.high * real_images) / n_classes))


def tune_mix_problem(tune: TuneConfig, n_classes: int, real_images: int) -> str | None:
    """Why the largest mix ratio finds too few images in the smallest trial set (every such trial
    would fail after both diffusion trainings), naming the values that fit; None when it fits."""
    mix, count = tune.mix_ratio, tune.synthetic_count
    per_class = math.ceil(count.low) if count else tune_per_class(tune, n_classes, real_images)
    needed, available = round(mix.high * real_images), per_class * n_classes
    if needed <= available:
        return None
    knob = "tune.synthetic_count.low" if count else "tune.per_class"
    return (f"tune.mix_ratio.high {mix.high:g} needs {needed} synthetic images ({real_images} real training "
            f"images), but a trial's set has {available} ({per_class} x {n_classes} classes): set {knob} "
            f"to {math.ceil(needed / n_classes)}{'' if count else ' (or auto)'}, or tune.mix_ratio.high "
            f"to {available / real_images:.3g}")


def check_mix_fits(tune: TuneConfig, n_classes: int, real_images: int) -> None:
    """``tune_mix_problem`` as a ``ConfigError``."""
    if problem := tune_mix_problem(tune, n_classes, real_images):
        raise ConfigError(problem)


def generate_shortfall(config: Config, counts: Mapping[str, int]) -> str | None:
    """Why a fixed ``generate.per_class`` gives fewer images than a classifier arm will draw (the
    arms fail then, after this stage's whole run), or None when it is enough or ``auto``. The
    ``synthetic`` arm draws as many images as the real training split has, ``real+synthetic``
    ``round(mix_ratio x n)``: of each class with ``classifier.synthetic_draw: per_class``, of the
    whole set with ``pooled``. ``counts``: real training images per class."""
    per_class, classes = config.generate.per_class, config.data.classes
    if per_class == "auto":
        return None
    n_real = sum(counts.values())
    ratio = max(1.0, config.classifier.mix_ratio)
    mix = f"classifier.mix_ratio {config.classifier.mix_ratio:g}"
    if config.classifier.synthetic_draw == "pooled":
        needed = round(ratio * n_real)
        if per_class * len(classes) >= needed:
            return None
        return (f"generate.per_class {per_class} x {len(classes)} classes = {per_class * len(classes)} "
                f"images, but the arms draw up to {needed} from the whole set (synthetic: the {n_real} real "
                f"training images' count; real+synthetic: round({mix} x {n_real})); set "
                f"generate.per_class: auto (or at least {-(-needed // len(classes))})")
    short = {c: n for c, n in per_class_draws(counts, ratio).items() if n > per_class}
    if not short:
        return None
    return (f"generate.per_class {per_class}, but the arms draw up to {short} images of these classes "
            f"(synthetic: as many as the real training split has of each class; real+synthetic: "
            f"round({mix} x that)); set generate.per_class: auto (or at least {max(short.values())})")
