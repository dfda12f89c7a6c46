"""The trained arms on the real test split: each arm's metrics, the paired differences, the curves.

This is the first and only place the test split is read. Probabilities come from
``evaluation/predictions.py``; each model's metrics and intervals from ``evaluation/scoring.py``.

For each arm found under ``paths.classifiers`` (``real``, ``real-noaug``, ``real+synthetic``,
``synthetic``; arms not trained are skipped) the metrics are computed for every seed and for the
seed average of the probabilities (``ensemble``, one model, with its ``confusion`` and, on patch
sets, its film-level ``image_auc_<positive>``), and averaged over the seeds (``seed_mean``: what
training this arm gives, the figure every verdict reads).

``seed_mean`` and every paired difference (``real+synthetic − real``, ``synthetic − real``,
``real − real-noaug``: what classic augmentation buys, ``real+synthetic − real-noaug``, each
recipe − ``real`` and each recipe − the same-count control) are means over the training seeds,
paired seed by seed, with an interval and p-value that count the seeds as random as well as the
test images (``bootstrap.seed_interval``), and the between-seed spread ``seed_sd``: a second
training run moves a figure by about that much.

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
from dataclasses import dataclass, replace

from sklearn.metrics import roc_curve

from controlbreast.classify.models import set_threads
from controlbreast.classify.predict import Predictor
from controlbreast.config import Config
from controlbreast.errors import ConfigError, MissingInputError
from controlbreast.evaluation.bootstrap import format_interval, percentile_interval
from controlbreast.evaluation.classification import reliability
from controlbreast.evaluation.config import EvaluateConfig
from controlbreast.evaluation.efficiency import data_efficiency
from controlbreast.evaluation.predictions import (
    ArmProbabilities,
    SplitImages,
    external_images,
    images_per_class,
    load_arm,
    predict_arm,
    predict_split,
    split_images,
    trained_arms,
)
from controlbreast.evaluation.recipes import control_recipe, generator_images, recipe_names, recipe_table
from controlbreast.evaluation.scoring import (
    SeedValues,
    confusion,
    image_level_auc,
    model_metrics,
    over_seeds,
    paired_differences,
    seed_values,
)
from controlbreast.mixing import ARMS, fraction_arm

COMPARISONS = (("real+synthetic", "real"), ("synthetic", "real"), ("real", "real-noaug"),
               ("real+synthetic", "real-noaug"))


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


def positive_index(config: Config) -> int:
    """Index of ``evaluate.positive_class`` (null: the last class) in ``data.classes``."""
    classes = list(config.data.classes)
    name = config.evaluate.positive_class or classes[-1]
    if name not in classes:
        raise ConfigError(f"evaluate.positive_class {name!r} is not one of data.classes {classes}")
    return classes.index(name)


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
    counts = images_per_class(images)
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

