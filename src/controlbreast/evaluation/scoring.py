"""One model's metrics on a split's probabilities, their bootstrap intervals and paired differences.

- ``auc_ovr_macro``: one-vs-rest AUC averaged over the classes (null when one is absent);
- ``auc_<positive>``: the positive class (``evaluate.positive_class``) against the rest;
- on an external set, and on any set lacking a class of ``data.classes``: ``auc_<class>`` for each
  class the set has and, when one is absent, ``auc_ovr_macro_present``: the same average over the
  classes the set has (named in its ``classes_present``): a set without normal images still says
  how well malignant is told from benign;
- ``balanced_accuracy``: mean per-class recall of the arg-max prediction;
- ``sensitivity`` / ``specificity`` of "positive" at the model's ``threshold`` on the positive
  class's probability, chosen on the *validation* split by Youden's J;
- ``ece``: top-label expected calibration error over ``evaluate.calibration_bins`` bins;
- ``confusion``: counts and row-normalised rates (true class → predicted class);
- ``image_auc_<positive>`` (patch sets only): film-level AUC of the highest positive-class
  probability over each film's patches. Ingest centred the lesion patches with the masks, so this
  knows where to look: an upper bound of a film reader's AUC (tiling the whole breast, as
  ``benchmarks/mammo_patches.py`` also does, is the fair number).

A single model's metric has a percentile bootstrap interval over class-stratified resamples of the
test images. Means over training seeds and paired differences (paired seed by seed) have an
interval and p-value that count the seeds as random as well as the test images
(``bootstrap.seed_interval``), and the between-seed spread ``seed_sd``.
"""

from __future__ import annotations

import numpy as np

from controlbreast.classify.scores import auc, macro_auc
from controlbreast.errors import ModelError
from controlbreast.evaluation.bootstrap import (
    Resampled,
    Statistic,
    bootstrap_interval,
    resample,
    seed_interval,
)
from controlbreast.evaluation.classification import (
    balanced_accuracy,
    confusion_rates,
    expected_calibration_error,
    sensitivity_specificity,
    youden_threshold,
)
from controlbreast.evaluation.config import EvaluateConfig
from controlbreast.evaluation.predictions import ArmProbabilities, SplitImages


def present_classes(images: SplitImages) -> tuple[int, ...] | None:
    """The class indices ``images`` holds, when their own AUCs are reported: on an external set,
    or wherever a class of ``data.classes`` is absent (the macro AUC over all is then undefined)."""
    present = tuple(int(c) for c in np.unique(images.labels))
    return present if images.external or len(present) < len(images.classes) else None


def class_aucs(probabilities: np.ndarray, labels: np.ndarray, positive: int, classes: tuple[str, ...],
               present: tuple[int, ...] | None) -> dict[str, Statistic]:
    """Each present class's one-vs-rest AUC (the positive class's is always there) and, when a
    class is absent, ``auc_ovr_macro_present``: empty when ``present`` is None."""
    if present is None:
        return {}
    found = {}
    if len(present) < len(classes):
        found["auc_ovr_macro_present"] = lambda i: macro_auc(probabilities[i], labels[i], present)
    for c in present:
        if c != positive:
            found[f"auc_{classes[c]}"] = lambda i, c=c: auc(probabilities[i, c], labels[i] == c)
    return found


def statistics(probabilities: np.ndarray, labels: np.ndarray, positive: int, threshold: float,
               classes: tuple[str, ...], bins: int,
               present: tuple[int, ...] | None = None) -> dict[str, Statistic]:
    """The scalar metrics of one model's (n, C) test probabilities, as functions of a (B, n) index;
    ``present``: see ``present_classes``."""
    count = len(classes)

    def probs(index):
        return probabilities[index]

    def binary(index):
        return sensitivity_specificity(probabilities[index, positive], labels[index] == positive, threshold)

    return {"auc_ovr_macro": lambda i: macro_auc(probs(i), labels[i]),
            f"auc_{classes[positive]}": lambda i: auc(probabilities[i, positive], labels[i] == positive),
            **class_aucs(probabilities, labels, positive, classes, present),
            "balanced_accuracy": lambda i: balanced_accuracy(probs(i).argmax(-1), labels[i], count),
            "sensitivity": lambda i: binary(i)[0],
            "specificity": lambda i: binary(i)[1],
            "ece": lambda i: expected_calibration_error(probs(i), labels[i], bins)}


def model_metrics(val_probs: np.ndarray, test_probs: np.ndarray, val: SplitImages, test: SplitImages,
                  positive: int, settings: EvaluateConfig) -> dict:
    """Every scalar metric of one model with its interval over test images, and the
    validation-chosen ``threshold``."""
    threshold = youden_threshold(val_probs[:, positive], val.labels == positive)
    stats = statistics(test_probs, test.labels, positive, threshold, test.classes, settings.calibration_bins,
                       present_classes(test))
    metrics = {name: bootstrap_interval(stat, test.labels, settings.bootstrap, settings.bootstrap_seed,
                                        settings.confidence).as_dict() for name, stat in stats.items()}
    return {**metrics, "threshold": threshold}


SeedValues = dict[str, dict[str, Resampled]]  # {seed: {metric: its value on the test images, resampled}}


def seed_values(probs: ArmProbabilities, val: SplitImages, test: SplitImages, positive: int,
                settings: EvaluateConfig) -> tuple[SeedValues, dict[str, float]]:
    """Each seed's model on the test images, at its own validation-chosen threshold: every metric
    on all images and on the shared resamples (``bootstrap.resample``), computed once for the
    seed's interval, the arm's mean and every difference; and the thresholds."""
    values, thresholds = {}, {}
    for name, val_probs, test_probs in zip(probs.seeds, probs.val, probs.test, strict=True):
        thresholds[name] = youden_threshold(val_probs[:, positive], val.labels == positive)
        stats = statistics(test_probs, test.labels, positive, thresholds[name], test.classes,
                           settings.calibration_bins, present_classes(test))
        values[name] = resample(stats, test.labels, settings.bootstrap, settings.bootstrap_seed)
    return values, thresholds


def over_seeds(per_seed: SeedValues, cases: int, settings: EvaluateConfig, difference: bool = False) -> dict:
    """Each metric averaged over the seeds, its interval over seeds and test images
    (``bootstrap.seed_interval``) and its between-seed spread."""
    names = next(iter(per_seed.values()))
    return {name: seed_interval([values[name] for values in per_seed.values()], cases, settings.confidence,
                                difference, (-1.0, 1.0) if difference else (0.0, 1.0)).as_dict()
            for name in names}


def confusion(test_probs: np.ndarray, test: SplitImages, settings: EvaluateConfig) -> dict:
    """Counts and row-normalised rates (with intervals) of true class → arg-max predicted class."""
    predicted, classes = test_probs.argmax(-1), test.classes
    interval = bootstrap_interval(lambda i: confusion_rates(predicted[i], test.labels[i], len(classes)),
                                  test.labels, settings.bootstrap, settings.bootstrap_seed,
                                  settings.confidence)
    counts = {t: {p: int(np.sum((test.labels == i) & (predicted == j))) for j, p in enumerate(classes)}
              for i, t in enumerate(classes)}
    rates = {t: {p: {"estimate": interval.estimate[i][j], "low": interval.low[i][j],
                     "high": interval.high[i][j]} for j, p in enumerate(classes)}
             for i, t in enumerate(classes)}
    return {"counts": counts, "rates": rates}


def image_level(probabilities: np.ndarray, test: SplitImages, positive: int) -> tuple[
        np.ndarray, np.ndarray] | None:
    """Per source image of patch rows: the highest positive-class probability over its patches
    (m,) and whether any of its patches is positive (m,) (a lesion patch carries the film's
    class); None when every row is a whole image."""
    if test.sources is None or len(set(test.sources)) == len(test.sources):
        return None
    names = sorted(set(test.sources))
    index = np.array([names.index(source) for source in test.sources])
    scores = np.full(len(names), -np.inf)
    np.maximum.at(scores, index, probabilities[:, positive])
    hits = np.zeros(len(names), dtype=bool)
    np.logical_or.at(hits, index, test.labels == positive)
    return scores, hits


def image_level_auc(probabilities: np.ndarray, test: SplitImages, positive: int,
                    settings: EvaluateConfig) -> dict:
    """``image_auc_<positive>``: the film-level AUC of max-pooled patch scores, its interval over
    films (the unit a screening reader decides on); empty for whole-image sets."""
    pooled = image_level(probabilities, test, positive)
    if pooled is None:
        return {}
    scores, hits = pooled
    interval = bootstrap_interval(lambda i: auc(scores[i], hits[i]), hits.astype(int), settings.bootstrap,
                                  settings.bootstrap_seed, settings.confidence)
    return {f"image_auc_{test.classes[positive]}": interval.as_dict(), "test_source_images": len(scores)}


def paired_differences(a: str, b: str, values: dict[str, SeedValues], cases: int,
                       settings: EvaluateConfig) -> dict:
    """``a − b`` for every metric, paired seed by seed (the seeds both arms trained) and on the same
    test resamples (``values``: each arm's ``seed_values``): the mean over seeds of each seed's
    difference, with an interval and p-value that hold the seeds and the test images random
    (``over_seeds``) and the between-seed spread."""
    first, second = values[a], values[b]
    common = [seed for seed in first if seed in second]
    if not common:
        raise ModelError(f"arms {a} ({list(first)}) and {b} ({list(second)}) share no seed: train "
                         "both with classifier.seeds")
    paired = {seed: {name: first[seed][name] - second[seed][name] for name in first[seed]} for seed in common}
    return over_seeds(paired, cases, settings, difference=True)

