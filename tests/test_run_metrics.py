"""run_metrics: the headline columns of a run, read from the committed summary and synthetic
report, within the cap and MLflow-safe; the full tables logged as artifacts that read back."""

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.utils.validation import _validate_metric_name

from builders import make_config
from controlbreast.run_metrics import (
    CAP,
    classifier_headline,
    dvc_headline,
    log_report,
    synthetic_headline,
)
from controlbreast.tracking import use_store

REPO = Path(__file__).resolve().parents[1]


def committed(name: str) -> dict:
    return json.loads((REPO / "metrics" / name).read_text())


def test_the_classifier_headline_is_a_few_named_columns_per_set():
    summary = committed("summary.json")
    found = classifier_headline(summary)
    assert len(found) <= CAP
    for key in found:
        _validate_metric_name(key)  # MLflow accepts it as logged
    assert found["test_auc_real"] == summary["auc"]["real"]
    assert found["test_auc_real_synthetic"] == summary["auc"]["real+synthetic"]
    primary = summary["difference"]["real+synthetic - real"]
    assert (found["test_diff_real_synthetic_vs_real"], found["test_diff_real_synthetic_vs_real_low"],
            found["test_diff_real_synthetic_vs_real_high"]) == (primary["estimate"], primary["low"],
                                                               primary["high"])
    for name, entry in summary["external"].items():
        assert found[f"{name}_auc_real"] == entry["auc"]["real"]
        assert found[f"{name}_diff_real_synthetic_vs_real"] == entry["real+synthetic - real"]["estimate"]


def test_the_synthetic_headline_names_realism_control_class_and_copies():
    report = committed("synthetic.json")
    found = synthetic_headline(report)
    assert len(found) <= CAP
    assert found["fid"] == report["realism"]["overall"]["fid"]
    assert found["edge_f1_ratio"] == report["control_fidelity"]["edge_f1"]["ratio"]
    assert found["class_accuracy"] == report["class_fidelity"]["accuracy"]
    assert found["likely_copies"] == report["memorisation"]["likely_copies"]
    assert synthetic_headline({"images": 3}) == {"images": 3.0}  # what a report lacks is left out


def test_dvc_headline_is_one_row_per_set_and_arm_under_four_columns():
    summary = committed("summary.json")
    rows = dvc_headline(summary)
    assert set(rows) == {"test", *summary["external"]}
    assert rows["test"]["real"] == {"auc": summary["auc"]["real"]}
    primary = summary["difference"]["real+synthetic - real"]
    assert rows["test"]["real+synthetic"] == {"auc": summary["auc"]["real+synthetic"],
                                              "diff": primary["estimate"], "diff_low": primary["low"],
                                              "diff_high": primary["high"]}
    assert {key for arms in rows.values() for row in arms.values() for key in row} == {
        "auc", "diff", "diff_low", "diff_high"}


def test_the_full_report_is_an_artifact_that_reads_back_as_a_table(tmp_path):
    use_store(make_config(tmp_path))
    report = committed("classifier.json")
    with mlflow.start_run() as run:
        log_report(report, "classifier")
    table = mlflow.load_table("tables/classifier.json", run_ids=[run.info.run_id])
    assert len(table) > 1000 and not mlflow.get_run(run.info.run_id).data.metrics
    value = table.set_index("metric")["value"]["arms.real.ensemble.auc_ovr_macro.estimate"]
    assert value == pytest.approx(report["arms"]["real"]["ensemble"]["auc_ovr_macro"]["estimate"], abs=1e-9)
    client = mlflow.MlflowClient()
    assert json.loads(Path(client.download_artifacts(run.info.run_id, "classifier.json", str(tmp_path)))
                      .read_text()) == report
