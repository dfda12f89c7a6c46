"""A small finished pipeline for the report tests, written by the real writers on tiny data:
ingest and controls on a 32 px phantom, the classifier metrics and curves of ``evaluation.arms``
on fixed probabilities, grids through ``grids.side_by_side``, an Optuna study's figures and
``tune.json`` from ``tuning``, and MLflow runs opened by ``tracking.stage_run``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import optuna

from builders import make_config
from controlbreast.config import Config
from controlbreast.controls.build import make_controls
from controlbreast.data.imageio import encode_png
from controlbreast.data.ingest import rejection_counts, run_ingest, split_counts
from controlbreast.evaluation.arms import arm_results, curves, finite
from controlbreast.evaluation.predictions import ArmProbabilities, SplitImages
from controlbreast.evaluation.recipes import recipe_table
from controlbreast.grids import side_by_side
from controlbreast.outputs import csv_bytes, write_atomic
from controlbreast.tracking import stage_run
from controlbreast.tuning.plots import render_all
from controlbreast.tuning.study import summarise

CLASSES = ("normal", "benign", "malignant")


def write_json(path: Path, value: dict) -> None:
    write_atomic(path, json.dumps(value, indent=2).encode())


def prepared(root: Path) -> Config:
    """Ingest a 32 px phantom (6 one-image patients per class) with controls, ``ingest.json`` as the
    stage writes it, and one rejected file appended to ``rejected.csv`` in its format."""
    config = make_config(root, data={"image_size": 32},
                         phantom={"patients_per_class": 6, "max_images_per_patient": 1, "render_size": 64},
                         evaluate={"bootstrap": 100}, report={"examples": 1})
    result = run_ingest(config)
    make_controls(config)
    with (Path(config.paths.prepared) / "rejected.csv").open("a", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerow(["scans/broken | 7.png", "cannot decode: truncated"])
    write_json(Path(config.paths.metrics) / "ingest.json", {
        "images": len(result.rows), "rejected": 1, "rejected_by_reason": {**rejection_counts(result.rejected),
                                                                          "bad_input": 1},
        "counts": split_counts(result.rows), "near_duplicates": result.merges})
    return config


def data_quality(config: Config) -> dict:
    """``metrics/data_quality.json`` in the gate's format (``quality/validate.py``)."""
    report = {"target": "prepared", "passed": True, "images": 18, "class_balance": {"train/normal": 4},
              "expectations": [{"expectation": "expect_column_values_to_be_unique", "table": "manifest",
                                "passed": True, "observed": None, "unexpected_count": 0, "column": "id"},
                               {"expectation": "expect_column_values_to_be_in_set", "table": "manifest",
                                "passed": True, "observed": None, "unexpected_count": 0, "column": "label"}]}
    write_json(Path(config.paths.metrics) / "data_quality.json", report)
    return report


def split(n: int, seed: int) -> SplitImages:
    labels = np.arange(n) % len(CLASSES)
    return SplitImages(tuple(f"{seed}-{i}" for i in range(n)), tuple(Path(f"{i}.png") for i in range(n)),
                       labels, CLASSES)


def probabilities(labels: np.ndarray, skill: float, seed: int) -> np.ndarray:
    """(n, C) probabilities that favour the true class by ``skill``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), len(CLASSES))) + skill * np.eye(len(CLASSES))[labels]
    exp = np.exp(logits)
    return exp / exp.sum(1, keepdims=True)


def classifier(config: Config) -> dict:
    """``metrics/classifier.json`` and the ROC/calibration CSVs, as ``stages/evaluate.py`` writes them,
    from fixed probabilities of three arms (three seeds each); histories per arm and seed."""
    val, test = split(30, 1), split(60, 2)
    seeds = ("seed-0", "seed-1", "seed-2")
    def per_seed(labels: np.ndarray, skill: float, seed: int) -> np.ndarray:
        return np.stack([probabilities(labels, skill, seed + 10 * s) for s in range(len(seeds))])

    arms = {arm: ArmProbabilities(arm, seeds, per_seed(val.labels, skill, 3 + k),
                                  per_seed(test.labels, skill, 13 + k))
            for k, (arm, skill) in enumerate((("real", 1.5), ("real+synthetic", 1.7), ("synthetic", 0.8)))}
    roc, calibration = [], []
    for probs in arms.values():
        rows = curves(probs, test, 2, config.evaluate.calibration_bins)
        roc, calibration = roc + rows[0], calibration + rows[1]
    scored, differences = arm_results(arms, config, val, test, 2)
    metrics = finite({"test_images": 60, "arms": scored, "differences": differences})
    metrics = {"recipes": recipe_table(config, metrics, {1.0: 40}), **metrics}
    write_json(Path(config.paths.metrics) / "classifier.json", metrics)
    plots = Path(config.paths.reports) / "classifier"
    write_atomic(plots / "roc.csv", csv_bytes(roc, ["arm", "point", "fpr", "tpr"]))
    write_atomic(plots / "calibration.csv", csv_bytes(calibration, ["arm", "point", "confidence", "accuracy",
                                                                     "count"]))
    for k, arm in enumerate(arms):
        history = [{"epoch": e, "train_loss": (1.2 + k) / e, "lr": 0.001, "val_auc": 0.6 + 0.04 * k * e}
                   for e in (1, 2, 3)]
        write_atomic(Path(config.paths.classifiers) / arm / "seed-0" / "history.csv",
                     csv_bytes(history, ["epoch", "train_loss", "lr", "val_auc"]))
    return metrics


def synthetic(config: Config) -> dict:
    """``metrics/synthetic.json`` in ``evaluation/synthetic.py``'s format and its PNG grids."""
    realism = {"fid": 12.5, "kid_mean": 0.0123, "kid_std": 0.002, "precision": 0.71, "recall": 0.42,
               "f_score": 0.53, "synthetic": 24.0, "real": 12.0, "kid_subset_size": 12.0}
    reference = {**realism, "fid": 4.25, "kid_mean": 0.0031, "precision": 0.88, "recall": 0.79}
    f1 = {"matched": 0.62, "shuffled": 0.21, "ratio": 2.95}
    report = {"images": 24, "classifier": "models/classifiers/real/seed-0",
              "realism": {"overall": realism, "per_class": {"benign": realism},
                          "reference_real_val": {"overall": reference, "per_class": {}}},
              "control_fidelity": {"edge_f1": f1,
                                   "edge_f1_within_class": {**f1, "shuffled": 0.33, "ratio": 1.88},
                                   "tolerance_px": 1, "measured_on": "canny", "per_class": {},
                                   "reference_real_val": {"edge_f1": {"matched": 1.0, "shuffled": 0.41,
                                                                      "ratio": 2.44}}},
              "class_fidelity": {"accuracy": 0.58, "macro_auc": 0.74, "recall": {"benign": 0.5},
                                 "reference_real_val": {"accuracy": 0.67, "macro_auc": 0.81, "recall": {}}},
              "memorisation": {"synthetic": {"ssim": {"fraction_above_real_val_max": 0.04}},
                               "reference_real_val": {}, "likely_copies": 1},
              "seconds": 3.2}
    write_json(Path(config.paths.metrics) / "synthetic.json", report)
    rng = np.random.default_rng(0)
    folder = Path(config.paths.reports) / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*CLASSES, "closest-pairs"):
        columns = [rng.integers(0, 256, (3, 32, 32), dtype=np.uint8) for _ in range(3)]
        (folder / (name if name == "closest-pairs" else f"grid-{name}")).with_suffix(".png").write_bytes(
            encode_png(side_by_side(*columns)))
    return report


def tune(config: Config) -> dict:
    """A small Optuna study's figures (``reports/tune``) and ``tune.json`` (``tuning.study.summarise``)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.7 + 0.1 * t.suggest_float("mix_ratio", 0.0, 1.0)
                   - 0.01 * t.suggest_float("guidance_scale", 1.0, 5.0), n_trials=10)
    figures = render_all(study, Path(config.paths.reports) / "tune")
    summary = summarise(study, 12.0) | {"figures": [p.name for p in figures]}
    write_json(Path(config.paths.metrics) / "tune.json", summary)
    return summary


def finished(root: Path) -> tuple[Config, dict]:
    """Every input of the report, and the metrics by name; two stages' MLflow runs."""
    config = prepared(root)
    metrics = {"data_quality": data_quality(config), "classifier": classifier(config),
               "synthetic": synthetic(config), "tune": tune(config),
               "ingest": json.loads((Path(config.paths.metrics) / "ingest.json").read_text())}
    for stage in ("ingest", "evaluate"):
        with stage_run(config, stage, ()):
            pass
    return config, metrics
