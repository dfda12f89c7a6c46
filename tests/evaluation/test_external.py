"""External test sets: ingested test-only by the same code, copies of training images reported and
left out, every arm evaluated on them beside the internal test split."""

from pathlib import Path

import pytest

from controlbreast.config import ExternalSetConfig
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.arms import evaluate_arms
from controlbreast.evaluation.external import excluded_ids, ingest_external
from controlbreast.outputs import read_csv

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
    for name, report in reports.items():
        found = rows(Path(config.paths.external) / name)
        assert {row.split for row in found} == {"test"} and len(found) == report["images"]
        assert report["expectations_passed"] > 5
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
