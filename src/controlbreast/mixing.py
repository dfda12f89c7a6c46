"""How the classifier arms mix real and synthetic images: what generation must make for them.

A leaf module, so that ``generation`` (which sizes the set) and ``classify`` (which draws from it)
agree on one rule without one importing the other.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from controlbreast.errors import DataError

ARMS = ("real", "real-noaug", "real+synthetic", "synthetic")
FRACTION_ARMS = ("real", "real+synthetic")  # trained again on each classifier.real_fractions below 1
FRACTIONS = "fractions"  # <paths.classifiers>/fractions/<arm>@<fraction>/: the data-efficiency arms
NO_AUGMENTATION = "real-noaug"  # the real arm without classic augmentation (flips, warps, contrast, noise)


def arm_draws(n_real: int, mix_ratio: float) -> dict[str, int]:
    """How many synthetic images each arm draws when the real training split has ``n_real``."""
    return {"real+synthetic": round(mix_ratio * n_real), "synthetic": n_real}


def synthetic_needed(train_labels: Sequence[str], classes: Sequence[str], mix_ratio: float) -> dict[str, int]:
    """Synthetic images per class (``generate.per_class: auto``) that let every arm draw its count.

    The arms draw uniformly from the whole set, so the set takes the real training split's class
    proportions: then the ``synthetic`` arm (with ``mix_ratio`` <= 1, the whole set) has the real
    split's class counts exactly, and ``real+synthetic`` those proportions in expectation.
    """
    counts = Counter(train_labels)
    n_real = sum(counts[c] for c in classes)
    if not n_real:
        raise DataError("the prepared manifest has no training image of the configured classes")
    total = max(arm_draws(n_real, mix_ratio).values())
    return {c: math.ceil(total * counts[c] / n_real) for c in classes}


def fraction_arm(arm: str, fraction: float) -> str:
    """The name of ``arm`` trained on ``fraction`` of the real training split: ``real@0.5``; the
    plain arm name at fraction 1."""
    return arm if fraction == 1.0 else f"{arm}@{fraction:g}"
