"""``controlbreast evaluate-synthetic``: realism, control and class fidelity, memorisation →
``metrics/synthetic.json`` and ``reports/synthetic/``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow

from controlbreast.config import Config, load_config
from controlbreast.data.imageio import encode_png
from controlbreast.evaluation.synthetic import SyntheticEvaluation, evaluate_synthetic
from controlbreast.outputs import atomic_folder, write_atomic
from controlbreast.run_metrics import log_report, synthetic_headline
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, tuned_values


def main(params: Path) -> None:
    """Evaluate the synthetic set; log its headline figures, the full report and the grids to
    MLflow. The shortcut probe reads the arms' draws at the tuned mix ratio, as
    ``train-classifier`` will draw them."""
    config = load_config(params)
    config = apply_tuned(config, {k: v for k, v in tuned_values(config).items() if k == "mix_ratio"})
    with stage_run(config, "evaluate_synthetic", ("synthetic_eval", "controls", "generate", "sampling"),
                   data=("training", "validation", "synthetic")):
        evaluation = evaluate_synthetic(config)
        write_outputs(config, evaluation)
        report = evaluation.report
        mlflow.log_metrics(synthetic_headline(report))
        log_report(report, "synthetic")
        mlflow.log_artifacts(str(Path(config.paths.reports) / "synthetic"), "grids")
    realism, control = report["realism"]["overall"], report["control_fidelity"]["edge_f1"]
    reference = report["realism"]["reference_real_val"]["overall"]
    ceiling = report["control_fidelity"]["reference_real_val"]["edge_f1"]["ratio"]
    print(f"evaluate-synthetic: FID {realism['fid']:.2f} (real val {reference['fid']:.2f}), "
          f"KID {realism['kid_mean']:.4f}, precision {realism.get('precision', float('nan')):.2f}, "
          f"recall {realism.get('recall', float('nan')):.2f}; control F1 {control['matched']:.3f} vs "
          f"shuffled {control['shuffled']:.3f} (ratio {control['ratio']:.2f}, real val {ceiling:.2f}); "
          f"class accuracy {report['class_fidelity']['accuracy']:.2f}; "
          f"likely copies {report['memorisation']['likely_copies']}{_placed(report)}{_separable(report)} "
          f"({report['seconds']:.1f} s)")
    found = {arm: probe["source_class_auc"] for arm, probe in report["shortcut_probe"].items()}
    probe = ", ".join(f"{arm} {value:.2f}" for arm, value in found.items() if value is not None)
    print(f"evaluate-synthetic: shortcut probe, source-class AUC of each mixed training set (0.5: the "
          f"source says nothing of the class): {probe}")


def write_outputs(config: Config, evaluation: SyntheticEvaluation) -> None:
    """The grids into ``<paths.reports>/synthetic/`` (swapped in whole), the warnings on stderr and
    the report as ``<paths.metrics>/synthetic.json``."""
    with atomic_folder(Path(config.paths.reports) / "synthetic") as build:
        for name, picture in evaluation.pictures.items():
            (build / name).write_bytes(encode_png(picture))
    for line in evaluation.warnings:
        print(line, file=sys.stderr)
    report = json.dumps(evaluation.report, indent=2).encode()
    write_atomic(Path(config.paths.metrics) / "synthetic.json", report)


def _placed(report: dict) -> str:
    placed = report["lesion_placement"]
    if "matched" not in placed:
        return ""
    return (f"; lesion segmenter Dice {placed['matched']:.3f} vs shuffled {placed['shuffled']:.3f} "
            f"(real val {placed['reference_real_val'].get('matched', float('nan')):.3f})")


def _separable(report: dict) -> str:
    if "separability" not in report:
        return ""
    auc = report["separability"]["overall"]
    return (f"; real-vs-synthetic AUC {auc['estimate']:.2f} [{auc['low']:.2f}, {auc['high']:.2f}] "
            "(0.5: indistinguishable)")
