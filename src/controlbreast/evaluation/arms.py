"""The trained arms on the real test split: metrics with bootstrap intervals and paired differences.

This is the first and only place the test split is read. Probabilities come from ``Predictor``
on the prepared PNG files decoded as ``controlbreast predict`` decodes them (once per split, each
model loaded once for every set), so a probability in
``metrics/classifier.json``'s curves is the one ``predict`` prints for that file.

For each arm found under ``paths.classifiers`` (``real``, ``real-noaug``, ``real+synthetic``,
``synthetic``; arms not trained are skipped) the metrics are computed for every seed and for the
seed average of the probabilities (``ensemble``, one model), and averaged over the seeds
(``seed_mean``: what training this arm gives, the figure every verdict reads):

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
- ``confusion`` (ensemble): counts and row-normalised rates (true class → predicted class);
- ``image_auc_<positive>`` (ensemble, patch sets only): film-level AUC of the highest
  positive-class probability over each film's patches. Ingest centred the lesion patches with the
  masks, so this knows where to look: an upper bound of a film reader's AUC (tiling the whole
  breast, as ``benchmarks/mammo_patches.py`` also does, is the fair number).

A single model's metric (a seed, the ensemble) has a percentile bootstrap interval over
class-stratified resamples of the test images. ``seed_mean`` and every paired difference
(``real+synthetic − real``, ``synthetic − real``, ``real − real-noaug``: what classic augmentation
buys, ``real+synthetic − real-noaug``, each recipe − ``real`` and each recipe − the same-count
control) are means over the training seeds, paired seed by seed, with an interval and p-value that
count the seeds as random as well as the test images (``bootstrap.seed_interval``), and
the between-seed spread ``seed_sd``: a second training run moves a figure by about that much.

Data efficiency: the arms trained on fractions of the real training split (``real@0.5``,
``real+synthetic@0.5``, ... under ``paths.classifiers/fractions``) are evaluated like the others,
with the paired ``real+synthetic@f − real@f``; ``data_efficiency`` gathers, per fraction, the
number of real training images and both arms' AUCs (fraction 1 is the ordinary arms).

External test sets (``evaluate.external``, ingested by ``ingest-external``): every arm is evaluated
on each the same way (thresholds still from the internal validation split), less the images
listed as near-duplicates of training images, with the same paired differences and a ROC of each
arm (``external_roc``; none when the set has no positive-class image): does the gain travel to
another site or scanner? An external set may hold any subset of the classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from controlbreast.classify.models import CARD, set_threads
from controlbreast.classify.predict import Predictor
from controlbreast.classify.scores import auc, macro_auc
from controlbreast.classify.transforms import decode_image
from controlbreast.config import Config
from controlbreast.data.datasets import label_indices
from controlbreast.data.imageio import read_bytes
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.errors import ConfigError, DataError, MissingInputError, ModelError
from controlbreast.evaluation.bootstrap import (
    Resampled,
    Statistic,
    bootstrap_interval,
    format_interval,
    percentile_interval,
    resample,
    seed_interval,
)
from controlbreast.evaluation.classification import (
    balanced_accuracy,
    confusion_rates,
    expected_calibration_error,
    reliability,
    sensitivity_specificity,
    youden_threshold,
)
from controlbreast.evaluation.config import EvaluateConfig
from controlbreast.evaluation.efficiency import data_efficiency
from controlbreast.evaluation.external import excluded_ids
from controlbreast.evaluation.recipes import control_recipe, generator_images, recipe_names, recipe_table
from controlbreast.mixing import ARMS, FRACTION_ARMS, FRACTIONS, RECIPES, fraction_arm

COMPARISONS = (("real+synthetic", "real"), ("synthetic", "real"), ("real", "real-noaug"),
               ("real+synthetic", "real-noaug"))


@dataclass(frozen=True)
class SplitImages:
    """One split of the prepared set as files: ``labels`` (n,) are indices into ``classes``;
    ``sources`` (n,) the source image of each (its own id unless it is a patch); ``external``:
    an external test set (its per-class AUCs are reported, see ``present_classes``)."""

    ids: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    sources: tuple[str, ...] | None = None
    external: bool = False
    pixels: tuple[np.ndarray, ...] = ()  # each file decoded once, as ``controlbreast predict`` decodes it

    @property
    def names(self) -> list[str]:
        return [str(path) for path in self.files]


@dataclass(frozen=True)
class ArmProbabilities:
    """Probabilities of every seed of one arm: ``val`` (S, n_val, C) and ``test`` (S, n_test, C)."""

    arm: str
    seeds: tuple[str, ...]
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """``metrics`` (JSON-ready numbers in nested dicts), curve and data-efficiency rows for DVC plots
    and the probabilities they came from; ``external_roc``: each external set's ROC rows (with a
    ``set`` column)."""

    metrics: dict
    roc: list[dict]
    calibration: list[dict]
    probabilities: dict[str, ArmProbabilities]
    test: SplitImages
    efficiency: list[dict]
    external_roc: list[dict]


def split_images(config: Config, split: str, folder: Path | None = None,
                 exclude: frozenset[str] = frozenset()) -> SplitImages:
    """The ``split`` rows of the prepared manifest (or of ``folder``'s), less ``exclude``, with
    their image files."""
    folder = Path(folder or config.paths.prepared)
    rows = [row for row in read_manifest(folder / "manifest.csv", PreparedRow)
            if row.split == split and row.id not in exclude]
    if not rows:
        raise DataError(f"{folder}/manifest.csv: no {split} images")
    classes, files = tuple(config.data.classes), tuple(folder / "images" / f"{row.id}.png" for row in rows)
    return SplitImages(ids=tuple(row.id for row in rows), files=files,
                       labels=label_indices([row.label for row in rows], classes, folder / "manifest.csv"),
                       classes=classes, sources=tuple(row.source_image for row in rows),
                       pixels=tuple(decode_image(read_bytes(path, str(path)), str(path)) for path in files))


def _seed_folders(folder: Path) -> list[Path]:
    folders = [p for p in folder.glob("seed-*") if (p / CARD).is_file()]
    return sorted(folders, key=lambda p: int(p.name.removeprefix("seed-")))


def trained_arms(root: Path, fractions: Sequence[float] = (),
                 recipes: Sequence[str] = ()) -> dict[str, list[Path]]:
    """``{arm: seed folders}`` of the arms trained under ``root``, in ``ARMS`` order, then the
    data-efficiency arms of ``fractions`` (``real@0.5``, ...) found under ``root/fractions``, then
    each of ``recipes`` at every fraction (under ``root/recipes``)."""
    below = [f for f in sorted(fractions) if f < 1.0]
    folders = {name: Path(root) / name for name in ARMS}
    folders |= {fraction_arm(arm, f): Path(root) / FRACTIONS / fraction_arm(arm, f)
                for f in below for arm in FRACTION_ARMS}
    folders |= {fraction_arm(name, f): Path(root) / RECIPES / fraction_arm(name, f)
                for name in recipes for f in sorted({*fractions, 1.0})}
    return {name: found for name, folder in folders.items() if (found := _seed_folders(folder))}


def load_arm(folders: Sequence[Path], classes: tuple[str, ...]) -> dict[str, Predictor]:
    """Each seed's model of one arm, by its seed folder's name (``seed-0``), loaded once for every
    set it predicts; a model of other classes than ``data.classes`` is refused."""
    models = {}
    for folder in folders:
        models[folder.name] = Predictor.from_folder(folder)
        if tuple(models[folder.name].card.classes) != classes:
            raise ModelError(f"{folder}: trained on classes {list(models[folder.name].card.classes)}, but "
                             f"data.classes is {list(classes)} (retrain the classifiers)")
    return models


def predict_split(models: dict[str, Predictor], images: SplitImages) -> np.ndarray:
    """(S, n, C): every seed's probabilities on ``images`` (its decoded ``pixels``)."""
    return np.stack([model.predict_decoded(images.pixels, images.names) for model in models.values()])


def predict_arm(arm: str, models: dict[str, Predictor], val: SplitImages,
                test: SplitImages) -> ArmProbabilities:
    """Probabilities of every seed's model on the validation and test images."""
    return ArmProbabilities(arm, tuple(models), predict_split(models, val), predict_split(models, test))


def positive_index(config: Config) -> int:
    """Index of ``evaluate.positive_class`` (null: the last class) in ``data.classes``."""
    classes = list(config.data.classes)
    name = config.evaluate.positive_class or classes[-1]
    if name not in classes:
        raise ConfigError(f"evaluate.positive_class {name!r} is not one of data.classes {classes}")
    return classes.index(name)


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


def arm_metrics(probs: ArmProbabilities, values: SeedValues, thresholds: dict[str, float], val: SplitImages,
                test: SplitImages, positive: int, settings: EvaluateConfig) -> dict:
    """One arm: each seed's metrics (``values``: ``seed_values``), their mean over seeds
    (``seed_mean``: the figure a verdict reads) and the seed-averaged model's (``ensemble``:
    probabilities averaged, one model)."""
    result = {"seeds": len(probs.seeds)}
    for name, metrics in values.items():
        result[name] = {**{metric: percentile_interval(value, settings.confidence).as_dict()
                           for metric, value in metrics.items()}, "threshold": thresholds[name]}
    result["seed_mean"] = over_seeds(values, len(test.ids), settings)
    ensemble = model_metrics(probs.val.mean(0), probs.test.mean(0), val, test, positive, settings)
    ensemble |= image_level_auc(probs.test.mean(0), test, positive, settings)
    result["ensemble"] = {**ensemble, "confusion": confusion(probs.test.mean(0), test, settings)}
    return result


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


def arm_results(probabilities: dict[str, ArmProbabilities], config: Config, val: SplitImages,
                test: SplitImages, positive: int) -> tuple[dict, dict]:
    """Every arm's metrics (``arm_metrics``) and every paired difference of ``comparisons`` whose
    arms were both trained, on ``test``; each model's metrics resampled once."""
    settings, arms, differences, values = config.evaluate, {}, {}, {}
    for arm, probs in probabilities.items():
        values[arm], thresholds = seed_values(probs, val, test, positive, settings)
        arms[arm] = arm_metrics(probs, values[arm], thresholds, val, test, positive, settings)
    for a, b in comparisons(config):
        if a in probabilities and b in probabilities:
            differences[f"{a} - {b}"] = paired_differences(a, b, values, len(test.ids), settings)
    return arms, differences


def curves(probs: ArmProbabilities, test: SplitImages, positive: int,
           bins: int) -> tuple[list[dict], list[dict]]:
    """ROC (positive class vs rest; no rows when the set lacks either side) and top-label
    calibration rows of an arm's ensemble."""
    mean, hit = probs.test.mean(0), test.labels == positive
    fpr, tpr, _ = roc_curve(hit, mean[:, positive]) if hit.any() and not hit.all() else ([], [], [])
    roc = [{"arm": probs.arm, "point": k, "fpr": round(float(x), 6), "tpr": round(float(y), 6)}
           for k, (x, y) in enumerate(zip(fpr, tpr, strict=True))]
    curve = reliability(mean.max(-1), mean.argmax(-1) == test.labels, bins)
    calibration = [{"arm": probs.arm, "point": k, "confidence": round(float(c), 6),
                    "accuracy": round(float(a), 6), "count": int(n)}
                   for k, (c, a, n) in enumerate(zip(curve["predicted"], curve["observed"], curve["count"],
                                                      strict=True))]
    return roc, calibration


def finite(value):
    """``value`` with NaN and infinities replaced by None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def comparisons(config: Config) -> list[tuple[str, str]]:
    """The paired differences: ``COMPARISONS``, ``real+synthetic − real`` at each fraction below 1,
    each recipe − ``real`` at every fraction, and each recipe that adds images − the same-count
    control (``recipes.control_recipe``) at every fraction (the same seeds, the same resamples)."""
    fractions = sorted({*config.classifier.real_fractions, 1.0})
    below = [f for f in fractions if f < 1.0]
    recipes = [(fraction_arm(name, f), fraction_arm("real", f)) for name in config.classifier.recipes
               for f in fractions]
    control = control_recipe(config)
    against_control = [(fraction_arm(name, f), fraction_arm(control, f)) for name in recipe_names(config)
                       if control is not None and name != control for f in fractions]
    return [*COMPARISONS, *((fraction_arm("real+synthetic", f), fraction_arm("real", f)) for f in below),
            *recipes, *against_control]


def external_images(config: Config, name: str) -> tuple[SplitImages, int]:
    """An external set's images less its near-duplicates of training images, and how many those are."""
    folder = Path(config.paths.external) / name
    if not (folder / "manifest.csv").is_file():
        raise MissingInputError(f"{folder}: external set {name!r} not ingested (run ingest-external)")
    excluded = excluded_ids(folder)
    images = split_images(config, "test", folder, frozenset(excluded))
    return replace(images, external=True), len(excluded)


def class_counts(images: SplitImages) -> dict[str, int]:
    """Images per class of ``data.classes`` (0 for a class the set lacks)."""
    return {name: int(np.sum(images.labels == c)) for c, name in enumerate(images.classes)}


def on_external(config: Config, name: str, models: dict[str, dict[str, Predictor]],
                internal: dict[str, ArmProbabilities], val: SplitImages,
                positive: int) -> tuple[dict, list[dict]]:
    """Every arm on one external set (thresholds from the internal validation split: ``internal``'s
    validation probabilities), with the same paired differences as on the internal test split; and
    each arm's ROC rows."""
    images, excluded = external_images(config, name)
    settings = config.evaluate
    probabilities = {arm: replace(internal[arm], test=predict_split(arm_models, images))
                     for arm, arm_models in models.items()}
    counts = class_counts(images)
    result = {"images": len(images.ids), "excluded_near_duplicates": excluded, "images_per_class": counts,
              "classes_present": [c for c, n in counts.items() if n], "arms": {}, "differences": {}}
    result["arms"], result["differences"] = arm_results(probabilities, config, val, images, positive)
    roc = [{"set": name, **row} for arm, probs in probabilities.items() if arm in ARMS
           for row in curves(probs, images, positive, settings.calibration_bins)[0]]
    return result, roc


def evaluate_arms(config: Config) -> Evaluation:
    """Evaluate every trained arm on the test split (see the module docstring)."""
    arms = trained_arms(config.paths.classifiers, config.classifier.real_fractions,
                        list(config.classifier.recipes))
    if not arms:
        raise MissingInputError(f"{config.paths.classifiers}: no trained classifier (run train-classifier)")
    settings, positive = config.evaluate, positive_index(config)
    set_threads(config.classifier.threads)
    val, test = split_images(config, "val"), split_images(config, "test")
    models = {arm: load_arm(folders, test.classes) for arm, folders in arms.items()}
    probabilities = {arm: predict_arm(arm, arm_models, val, test) for arm, arm_models in models.items()}
    metrics = {"test_images": len(test.ids)}
    metrics["arms"], metrics["differences"] = arm_results(probabilities, config, val, test, positive)
    roc, calibration = [], []
    for arm, probs in probabilities.items():
        if arm in ARMS:  # the data-efficiency arms have their own plot
            arm_roc, arm_calibration = curves(probs, test, positive, settings.calibration_bins)
            roc += arm_roc
            calibration += arm_calibration
    metrics["data_efficiency"], efficiency = data_efficiency(
        config, metrics, f"auc_{config.data.classes[positive]}")
    metrics["external"], external_roc = {}, []
    for external in settings.external:
        metrics["external"][external.name], rows = on_external(config, external.name, models, probabilities,
                                                               val, positive)
        external_roc += rows
    control = control_recipe(config)
    recipes = recipe_table(config, finite(metrics), generator_images(config))
    metrics = {"recipes": recipes, **({"same_count_control": control} if control else {}), **metrics}
    return Evaluation(finite(metrics), roc, calibration, probabilities, test,
                      [finite(row) for row in efficiency], external_roc)


def table(metrics: dict) -> str:
    """A plain-text table: one row per arm (mean over seeds), one column per scalar metric, then
    the paired differences (p: the seeds-and-images t test of ``bootstrap.seed_images_interval``)."""
    arms = metrics["arms"]
    if not arms:
        return ""
    names = list(next(iter(arms.values()))["seed_mean"])
    lines = [" | ".join(["arm (seeds), mean over seeds", *names])]
    for arm, result in arms.items():
        cells = [format_interval(result["seed_mean"][name]) for name in names]
        lines.append(" | ".join([f"{arm} ({result['seeds']})", *cells]))
    for comparison, result in metrics["differences"].items():
        cells = [format_interval(result.get(name, {}), signed=True) for name in names]
        lines.append(" | ".join([comparison, *cells]))
    return "\n".join(lines)
