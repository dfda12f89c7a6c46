"""``controlbreast evaluate``: every trained arm on the real test split → ``metrics/classifier.json``
(every number), ``metrics/summary.json`` (the headline, ``evaluation/headline.py``) and
``metrics/headline/<set>/<arm>.json`` (what ``dvc metrics show`` prints), ROC and
calibration curves for DVC plots (``<paths.reports>/classifier/``; each external set's ROC in
``roc_external.csv``); to MLflow the headline columns (``run_metrics``), the full tables as artifacts
and the figures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.evaluation.arms import evaluate_arms, positive_index, table
from controlbreast.evaluation.bootstrap import format_interval
from controlbreast.evaluation.efficiency import efficiency_table
from controlbreast.evaluation.figures import curve_figure, efficiency_figure, recipe_figure
from controlbreast.evaluation.headline import PRIMARY, headline, set_metric, travel
from controlbreast.evaluation.recipes import PLOT_COLUMNS, plot_rows, summary_lines
from controlbreast.outputs import atomic_folder, csv_bytes, write_atomic
from controlbreast.run_metrics import classifier_headline, dvc_headline, log_report
from controlbreast.tracking import stage_run


def write_headline(summary: dict, folder: Path) -> None:
    """``<folder>/<set>/<arm>.json``: the rows of ``dvc metrics show`` (``run_metrics.dvc_headline``)."""
    with atomic_folder(folder) as build:
        for name, arms in dvc_headline(summary).items():
            for arm, row in arms.items():
                write_atomic(build / name / f"{arm}.json", (json.dumps(row, indent=2) + "\n").encode())


def write_efficiency(rows: list[dict], plots: Path, positive_auc: str) -> None:
    """The data-efficiency rows (DVC plot) and their PNG (macro AUC against real training images)."""
    columns = ["arm", "fraction", "real_images"] + [
        f"{name}{suffix}" for name in ("auc_ovr_macro", positive_auc) for suffix in ("", "_low", "_high")]
    write_atomic(plots / "data_efficiency.csv", csv_bytes(rows, columns))
    figure = efficiency_figure(rows, "auc_ovr_macro", "Data efficiency on the test split (mean over seeds)",
                               "AUC (macro, one-vs-rest), 95% interval")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(plots / "data_efficiency.png", buffer.getvalue())
    mlflow.log_figure(figure, "figures/data_efficiency.png")


def write_recipes(table: dict, plots: Path) -> None:
    """The recipe × fraction differences (DVC plot) and their PNG: recipe − real against real images."""
    rows = plot_rows(table)
    write_atomic(plots / "recipes.csv", csv_bytes(rows, PLOT_COLUMNS))
    figure = recipe_figure(rows, "Recipe − real, macro AUC (mean over seeds; 95% interval over seeds and "
                                 "test images)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(plots / "recipes.png", buffer.getvalue())
    mlflow.log_figure(figure, "figures/recipes.png")


def external_lines(metrics: dict) -> list[str]:
    """Per external set: its size and classes, then whether ``real+synthetic − real`` travelled."""
    own = set_metric(metrics)
    inside = metrics["differences"].get(PRIMARY, {}).get(own)
    lines = []
    for name, found in metrics["external"].items():
        metric = set_metric(found)
        outside = found["differences"].get(PRIMARY, {}).get(metric)
        classes = ", ".join(f"{n} {c}" for c, n in found["images_per_class"].items())
        lines.append(f"external set {name}: {found['images']} images ({classes}; "
                     f"{found['excluded_near_duplicates']} near-duplicates of training images excluded)")
        if outside is not None:
            lines.append(f"  {PRIMARY}, {metric}: {format_interval(outside, signed=True)} here; internal "
                         f"{own}: {format_interval(inside or {}, signed=True)}: {travel(inside, outside)}")
        lines.append(table(found))
    return lines


def log_external_roc(rows: list[dict], metrics: dict, plots: Path, positive: str) -> None:
    """Each external set's ROC rows (``roc_external.csv``, DVC plot) and one MLflow figure per set."""
    write_atomic(plots / "roc_external.csv", csv_bytes(rows, ["set", "arm", "point", "fpr", "tpr"]))
    for name, found in metrics["external"].items():
        points = [row for row in rows if row["set"] == name]
        if points:
            legend = {arm: f"{arm} (AUC {value:.3f})" for arm, result in found["arms"].items()
                      if (value := result["ensemble"][f"auc_{positive}"]["estimate"]) is not None}
            mlflow.log_figure(curve_figure(points, "fpr", "tpr", f"ROC, {positive} vs rest ({name})",
                                           "false-positive rate", "true-positive rate", legend),
                              f"figures/roc_{name}.png")


def main(params: Path) -> None:
    """Evaluate, write the metrics and curves, log them and the figures to MLflow, print a table."""
    config = load_config(params)
    with stage_run(config, "evaluate", ("evaluate",), data=("test", "external")):
        result = evaluate_arms(config)
        metrics_file = Path(config.paths.metrics) / "classifier.json"
        write_atomic(metrics_file, (json.dumps(result.metrics, indent=2) + "\n").encode())
        summary_file = Path(config.paths.metrics) / "summary.json"
        summary = headline(result.metrics)
        write_atomic(summary_file, (json.dumps(summary, indent=2) + "\n").encode())
        write_headline(summary, Path(config.paths.metrics) / "headline")
        plots = Path(config.paths.reports) / "classifier"
        write_atomic(plots / "roc.csv", csv_bytes(result.roc, ["arm", "point", "fpr", "tpr"]))
        write_atomic(plots / "calibration.csv",
                     csv_bytes(result.calibration, ["arm", "point", "confidence", "accuracy", "count"]))
        positive = config.data.classes[positive_index(config)]
        write_efficiency(result.efficiency, plots, f"auc_{positive}")
        write_recipes(result.metrics["recipes"], plots)
        auc_key = f"auc_{positive}"
        aucs = {arm: m["ensemble"][auc_key]["estimate"] for arm, m in result.metrics["arms"].items()}
        legend = {arm: f"{arm} (AUC {value:.3f})" for arm, value in aucs.items() if value is not None}
        mlflow.log_metrics(classifier_headline(summary))
        log_report(result.metrics, "classifier")
        mlflow.log_dict(summary, "summary.json")
        mlflow.log_figure(curve_figure(result.roc, "fpr", "tpr", f"ROC, {positive} vs rest (test)",
                                       "false-positive rate", "true-positive rate", legend),
                          "figures/roc.png")
        log_external_roc(result.external_roc, result.metrics, plots, positive)
        mlflow.log_figure(curve_figure(result.calibration, "confidence", "accuracy",
                                       "Calibration, top label (test)", "confidence", "accuracy"),
                          "figures/calibration.png")
    print(f"evaluate: {result.metrics['test_images']} test images; means over the training seeds, "
          f"{config.evaluate.confidence:.0%} intervals -> {metrics_file} (headline: {summary_file})")
    print("\n".join(summary_lines(result.metrics["recipes"], result.metrics.get("same_count_control"))))
    print(table(result.metrics))
    print(efficiency_table(result.efficiency))
    for line in external_lines(result.metrics):
        print(line)
