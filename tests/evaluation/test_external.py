"""External test sets: ingested test-only by the same code, copies of training images reported and
left out, every arm evaluated on them beside the internal test split; a set lacking a class runs
through evaluate and report with the AUCs it can give."""

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

from classifier_builders import write_csv_external, write_params
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.arms import evaluate_arms
from controlbreast.evaluation.config import ExternalSetConfig
from controlbreast.evaluation.external import excluded_ids, ingest_external
from controlbreast.outputs import read_csv
from controlbreast.stages import evaluate, report
from controlbreast.stages import ingest_external as ingest_stage

SMALL = {"max_images_per_patient": 1, "render_size": 64}


@pytest.fixture(scope="module")
def external(trained_classifiers, tmp_path_factory):
    """Two external sets: the training phantom again with one more patient per class (so most images
    are copies of prepared ones) and a second scanner (other patients, speckle, gain and depth)."""
    config = trained_classifiers.config
    sets = (ExternalSetConfig(name="copies", phantom={**SMALL, "patients_per_class": 15}),
            ExternalSetConfig(name="scanner-b", phantom={**SMALL, "patients_per_class": 6, "seed": 8,
                                                         "speckle_size": 1.4, "gain_db": -4.0,
                                                         "depth_db": -6.0}))
    config = config.model_copy(update={
        "paths": config.paths.model_copy(update={"external": tmp_path_factory.mktemp("external")}),
        "evaluate": config.evaluate.model_copy(update={"external": sets})})
    reports = {s.name: ingest_external(config, s) for s in sets}
    return config, reports, evaluate_arms(config)


def rows(folder: Path) -> list[PreparedRow]:
    return read_manifest(Path(folder) / "manifest.csv", PreparedRow)


def test_external_sets_are_test_only_and_gated(external):
    config, reports, _ = external
    for name, counts in reports.items():
        found = rows(Path(config.paths.external) / name)
        assert {row.split for row in found} == {"test"} and len(found) == counts["images"]
        assert counts["expectations_passed"] > 5
    assert reports["copies"]["images"] == 45


def test_copies_of_training_images_are_reported_and_excluded(external):
    config, reports, evaluation = external
    folder = Path(config.paths.external) / "copies"
    seen = {row.sha256: row for row in rows(config.paths.prepared) if row.split in ("train", "val")}
    copies = {row.id for row in rows(folder) if row.sha256 in seen}
    assert copies and copies <= excluded_ids(folder)  # every copy of a train/val image is flagged
    listed = read_csv(folder / "near_duplicates.csv")
    assert all(row["training_split"] in ("train", "val") for row in listed)
    by_id = {row.id: row for row in rows(folder)}
    for row in listed:
        if row["id"] in copies:
            assert seen[by_id[row["id"]].sha256].id == row["training_id"]
    assert reports["copies"]["near_duplicates_of_training"] == len(listed)
    result = evaluation.metrics["external"]["copies"]
    assert result["excluded_near_duplicates"] == len(listed)
    assert result["images"] == 45 - len(listed)


def test_every_arm_is_evaluated_on_every_external_set_with_paired_differences(external):
    _, reports, evaluation = external
    metrics = evaluation.metrics
    result = metrics["external"]["scanner-b"]
    assert result["images"] == reports["scanner-b"]["images"] - result["excluded_near_duplicates"] > 0
    assert list(result["arms"]) == list(metrics["arms"])
    assert set(result["differences"]) == set(metrics["differences"])
    auc = result["arms"]["real"]["ensemble"]["auc_ovr_macro"]
    assert 0.0 <= auc["low"] <= auc["estimate"] <= auc["high"] <= 1.0
    # the internal threshold (validation) is the one used off-site too
    assert result["arms"]["real"]["ensemble"]["threshold"] == metrics["arms"]["real"]["ensemble"]["threshold"]


def test_an_external_set_not_ingested_is_a_clear_error(external, tmp_path):
    config, _, _ = external
    elsewhere = config.model_copy(update={"paths": config.paths.model_copy(update={"external": tmp_path})})
    with pytest.raises(ControlBreastError, match="ingest-external"):
        evaluate_arms(elsewhere)


@pytest.fixture(scope="module")
def two_class(trained_classifiers, tmp_path_factory):
    """The ``ingest-external``, ``evaluate`` and ``report`` stages run with one external set that
    has no normal class (a CSV set, as a user writes one for BUS-BRA)."""
    root = tmp_path_factory.mktemp("two-class")
    base = trained_classifiers.config
    external = ExternalSetConfig(name="bus-two", source="csv",
                                 **write_csv_external(root / "set", ("benign", "malignant")))
    paths = base.paths.model_copy(update={name: root / name for name in ("external", "metrics", "reports",
                                                                         "mlruns")})
    config = base.model_copy(update={"paths": paths, "evaluate": base.evaluate.model_copy(
        update={"external": (external,)})})
    params = write_params(config, root / "params.yaml")
    before, printed = Path.cwd(), io.StringIO()
    os.chdir(root)  # the report reads dvc.lock (absent here) and the commit from the working folder
    try:
        with contextlib.redirect_stdout(printed):
            for stage in (ingest_stage, evaluate, report):
                stage.main(params)
    finally:
        os.chdir(before)
    return config, printed.getvalue()


def test_a_set_without_a_class_gets_the_auc_over_the_classes_it_has(two_class):
    config, printed = two_class
    assert "ingest-external: bus-two (csv): 10 images (5 benign, 5 malignant; no normal)" in printed
    assert re.search(r"\n  real\+synthetic - real, auc_ovr_macro_present: [+-]\d\.\d{3} \[.*\] p=.* here; "
                     r"internal auc_ovr_macro: .*: (the|no|a|reversed)", printed)  # did it travel, in words
    metrics = Path(config.paths.metrics)
    found = json.loads((metrics / "classifier.json").read_text())["external"]["bus-two"]
    assert found["images_per_class"]["normal"] == 0 and found["classes_present"] == ["benign", "malignant"]
    ensemble = found["arms"]["real"]["ensemble"]
    assert ensemble["auc_ovr_macro"]["estimate"] is None and "auc_normal" not in ensemble
    present, benign = ensemble["auc_ovr_macro_present"], ensemble["auc_benign"]
    malignant = ensemble["auc_malignant"]["estimate"]
    assert present["estimate"] == pytest.approx((benign["estimate"] + malignant) / 2)
    summary = json.loads((metrics / "summary.json").read_text())["external"]["bus-two"]
    assert summary["images_per_class"] == found["images_per_class"] and "auc" not in summary
    mean = found["arms"]["real"]["seed_mean"]["auc_ovr_macro_present"]["estimate"]
    assert summary["auc_ovr_macro_present"]["real"] == round(mean, 3)  # the mean over seeds
    assert all(isinstance(v, float) for v in summary["real+synthetic - real"].values())
    roc = read_csv(Path(config.paths.reports) / "classifier" / "roc_external.csv")
    assert {row["set"] for row in roc} == {"bus-two"}
    assert {row["arm"] for row in roc} >= {"real", "real+synthetic"}


def test_the_report_shows_the_set_with_its_roc_after_the_internal_result_and_says_if_it_travelled(two_class):
    html = (Path(two_class[0].paths.reports) / "index.html").read_text()
    glance = html[html.index('<section id="glance">'):html.index('<section id="data">')]
    assert ("External set bus-two: adding synthetic images to the real ones (real+synthetic - real) "
            "changed") in glance
    assert re.search(r"\(the internal test split[^()]*\): (the gain|the loss|the internal loss|no measurable|"
                     r"a measurable|reversed)", glance)  # the verdict: did the internal result travel?
    classifiers = html[html.index('<section id="classifiers">'):]
    order = [classifiers.index(mark) for mark in ('data-name="roc.png"', "External set bus-two: 10 images",
                                                   'data-name="roc-external-bus-two.png"',
                                                   'data-name="calibration.png"')]
    assert order == sorted(order)  # internal ROC, then the external set and its ROC, then the rest
    assert "No normal images" in classifiers and "AUC (macro over the classes present)" in classifiers
