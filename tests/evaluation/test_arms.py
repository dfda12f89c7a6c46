"""The arms on the test split: metrics, intervals, paired differences, curves and the stage's files."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from classifier_builders import split_ids
from controlbreast.classify.predict import Predictor
from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.arms import evaluate_arms
from controlbreast.evaluation.classification import youden_threshold
from controlbreast.evaluation.predictions import split_images, trained_arms
from controlbreast.evaluation.scoring import paired_differences, seed_values
from controlbreast.outputs import read_csv
from controlbreast.run_metrics import classifier_headline
from controlbreast.stages import evaluate as stage
from controlbreast.tracking import flatten, use_store

SCALARS = ("auc_ovr_macro", "auc_malignant", "balanced_accuracy", "sensitivity", "specificity", "ece")


@pytest.fixture(scope="module")
def evaluation(trained_classifiers):
    return evaluate_arms(trained_classifiers.config)


def test_every_trained_arm_and_seed_is_evaluated_on_exactly_the_test_split(trained_classifiers, evaluation):
    config = trained_classifiers.config
    assert list(evaluation.metrics["arms"]) == ["real", "real-noaug", "real+synthetic", "synthetic",
                                                "real@0.5", "real+synthetic@0.5", "real-repeat@0.5",
                                                "real-repeat"]
    assert {k for k in evaluation.metrics["arms"]["real"] if k.startswith("seed-")} == {"seed-0", "seed-1"}
    assert list(evaluation.test.ids) == split_ids(config, "test")
    assert evaluation.metrics["test_images"] == len(split_ids(config, "test"))
    assert evaluation.probabilities["real"].test.shape == (2, len(evaluation.test.ids), 3)


def test_point_estimates_match_sklearn_and_intervals_cover_them(evaluation):
    probs = evaluation.probabilities["real"].test.mean(0)
    labels = evaluation.test.labels
    ensemble = evaluation.metrics["arms"]["real"]["ensemble"]
    assert ensemble["auc_ovr_macro"]["estimate"] == pytest.approx(
        roc_auc_score(labels, probs / probs.sum(1, keepdims=True), multi_class="ovr"))
    assert ensemble["auc_malignant"]["estimate"] == pytest.approx(roc_auc_score(labels == 2, probs[:, 2]))
    for arm in evaluation.metrics["arms"].values():
        for model in (v for k, v in arm.items() if k == "ensemble" or k.startswith("seed-")):
            for name in SCALARS:
                value = model[name]
                assert value["low"] - 1e-12 <= value["estimate"] <= value["high"] + 1e-12, name
    counts = ensemble["confusion"]["counts"]
    assert sum(sum(row.values()) for row in counts.values()) == len(labels)
    assert counts["malignant"]["malignant"] == int(np.sum((labels == 2) & (probs.argmax(1) == 2)))


def test_operating_point_comes_from_validation(trained_classifiers, evaluation):
    val = split_images(trained_classifiers.config, "val")
    probs = evaluation.probabilities["synthetic"]
    expected = youden_threshold(probs.val.mean(0)[:, 2], val.labels == 2)
    assert evaluation.metrics["arms"]["synthetic"]["ensemble"]["threshold"] == pytest.approx(expected)
    assert evaluation.metrics["arms"]["synthetic"]["seed-0"]["threshold"] == pytest.approx(
        youden_threshold(probs.val[0][:, 2], val.labels == 2))


def test_paired_differences_are_means_over_seeds_with_the_control_and_a_model_against_itself(
        trained_classifiers, evaluation):
    differences = evaluation.metrics["differences"]
    assert set(differences) == {"real+synthetic - real", "synthetic - real", "real - real-noaug",
                                "real+synthetic - real-noaug", "real+synthetic@0.5 - real@0.5",
                                "real-repeat@0.5 - real@0.5", "real-repeat - real",
                                "real+synthetic - real-repeat", "real+synthetic@0.5 - real-repeat@0.5"}
    arms = evaluation.metrics["arms"]
    common = sorted({k for k in arms["real+synthetic"] if k.startswith("seed-")}
                    & {k for k in arms["real"] if k.startswith("seed-")})
    for name in SCALARS:  # paired over the seeds both arms trained
        diff = differences["real+synthetic - real"][name]
        assert diff["estimate"] == pytest.approx(np.mean([arms["real+synthetic"][seed][name]["estimate"]
                                                          - arms["real"][seed][name]["estimate"]
                                                          for seed in common])), name
        assert diff["seeds"] == len(common) and diff["seed_sd"] >= 0
        assert 0.0 <= diff["p_value"] <= 1.0 if diff["high"] > diff["low"] else "p_value" not in diff
        assert diff["low"] <= diff["estimate"] <= diff["high"]
    seed_aucs = [arms["real"][seed]["auc_ovr_macro"]["estimate"] for seed in ("seed-0", "seed-1")]
    assert arms["real"]["seed_mean"]["auc_ovr_macro"]["estimate"] == pytest.approx(np.mean(seed_aucs))
    config = trained_classifiers.config
    real, val = evaluation.probabilities["real"], split_images(config, "val")
    values = {"real": seed_values(real, val, evaluation.test, 2, config.evaluate)[0]}
    same = paired_differences("real", "real", values, len(evaluation.test.ids), config.evaluate)
    for name, value in same.items():
        assert (value["estimate"], value["low"], value["high"], value["seed_sd"]) == (0, 0, 0, 0), name
        assert "p_value" not in value, "two identical models: no test, not p = 1"


def test_predict_matches_the_evaluation_probability_of_each_test_image(trained_classifiers, evaluation):
    folder = trained_arms(trained_classifiers.config.paths.classifiers)["real"][1]
    files = list(evaluation.test.files)
    np.testing.assert_array_equal(Predictor.from_folder(folder).predict_files(files[2:4]),
                                  evaluation.probabilities["real"].test[1][2:4])


def test_curves_have_every_arm(evaluation):
    for rows in (evaluation.roc, evaluation.calibration):
        assert {row["arm"] for row in rows} == {"real", "real-noaug", "real+synthetic", "synthetic"}
    real = [row for row in evaluation.roc if row["arm"] == "real"]
    assert (real[0]["fpr"], real[0]["tpr"], real[-1]["fpr"], real[-1]["tpr"]) == (0.0, 0.0, 1.0, 1.0)
    counts = [row["count"] for row in evaluation.calibration if row["arm"] == "synthetic"]
    assert sum(counts) == len(evaluation.test.ids)


def test_stage_writes_dvc_metrics_plots_and_mlflow_figures(trained_classifiers, capsys):
    config = trained_classifiers.config
    stage.main(trained_classifiers.params)
    text = (Path(config.paths.metrics) / "classifier.json").read_text()
    metrics = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metrics JSON"))
    assert all(isinstance(value, int | float) or value is None for key, value in flatten(metrics).items()
               if key != "same_count_control")
    assert metrics["same_count_control"] == "real-repeat"
    roc = read_csv(Path(config.paths.reports) / "classifier" / "roc.csv")
    assert set(roc[0]) == {"arm", "point", "fpr", "tpr"}
    assert set(read_csv(Path(config.paths.reports) / "classifier" / "calibration.csv")[0]) == {
        "arm", "point", "confidence", "accuracy", "count"}
    assert "real+synthetic - real" in capsys.readouterr().out
    summary = json.loads((Path(config.paths.metrics) / "summary.json").read_text())
    headline = {key: value for key, value in summary.items() if key != "recipes"}
    assert len(flatten(headline)) < 60, "the headline stays short enough to read in a terminal"
    assert next(iter(summary)) == "recipes"  # the answer first: recipe x fraction x set
    repeat = metrics["differences"]["real-repeat@0.5 - real@0.5"]["auc_ovr_macro"]
    bounds = ("estimate", "low", "high", "seed_sd")
    assert summary["recipes"]["real-repeat"]["0.5"]["test"] == pytest.approx(
        {key: round(repeat[key], 3) for key in bounds})
    assert set(summary["recipes"]) == {"real+synthetic", "real-repeat"}
    assert set(summary["recipes"]["real-repeat"]["1"]) == {"real_images", "generator_images", "test"}
    against = metrics["differences"]["real+synthetic@0.5 - real-repeat@0.5"]["auc_ovr_macro"]
    assert summary["recipes"]["real+synthetic"]["0.5"]["test"]["vs_control"] == pytest.approx(
        {key: round(against[key], 3) for key in bounds})
    assert summary["recipes"]["real+synthetic"]["0.5"]["generator_images"] == len(split_ids(config, "train"))
    assert summary.pop("same_count_control") == "real-repeat"
    assert all(isinstance(value, int | float) for value in flatten(summary).values())
    real = metrics["arms"]["real"]["seed_mean"]["auc_ovr_macro"]
    assert summary["auc"]["real"] == round(real["estimate"], 3)
    gain = metrics["differences"]["real+synthetic - real"]["auc_ovr_macro"]
    assert summary["difference"]["real+synthetic - real"] == {key: round(gain[key], 3) for key in bounds}
    assert set(summary["fraction"]) == set(metrics["data_efficiency"])
    use_store(config)
    run = mlflow.search_runs(search_all_experiments=True, output_format="list",
                             filter_string="tags.stage = 'evaluate'")[0]
    gain_vs_real = summary["difference"]["real+synthetic - real"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")}
    assert artifacts == {"figures/roc.png", "figures/calibration.png", "figures/data_efficiency.png",
                         "figures/recipes.png"}
    recipes = read_csv(Path(config.paths.reports) / "classifier" / "recipes.csv")
    assert {(r["recipe"], r["fraction"]) for r in recipes} == {
        (name, f) for name in ("real+synthetic", "real-repeat") for f in ("0.5", "1.0")}
    efficiency = read_csv(Path(config.paths.reports) / "classifier" / "data_efficiency.csv")
    assert len(efficiency) == 4
    assert {"real_images", "auc_ovr_macro_low", "auc_ovr_macro_high"} <= set(efficiency[0])
    png = (Path(config.paths.reports) / "classifier" / "data_efficiency.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert run.data.metrics == classifier_headline(summary)  # the headline columns, not every number
    assert run.data.metrics["test_auc_real_synthetic"] == summary["auc"]["real+synthetic"]
    tables = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "tables")}
    assert tables == {"tables/classifier.json"}
    rows = json.loads((Path(config.paths.metrics) / "headline" / "test" / "real+synthetic.json").read_text())
    assert rows == {"auc": summary["auc"]["real+synthetic"], "diff": gain_vs_real["estimate"],
                    "diff_low": gain_vs_real["low"], "diff_high": gain_vs_real["high"]}


def test_data_efficiency_has_every_arm_and_fraction_with_the_paired_difference(trained_classifiers,
                                                                               evaluation):
    table, arms = evaluation.metrics["data_efficiency"], evaluation.metrics["arms"]
    assert list(table) == ["0.5", "1"]
    assert 0 < table["0.5"]["real_images"] < table["1"]["real_images"] == len(
        split_ids(trained_classifiers.config, "train"))
    for fraction, suffix in (("0.5", "@0.5"), ("1", "")):
        for arm in ("real", "real+synthetic"):
            assert table[fraction][arm]["auc_ovr_macro"]["estimate"] == arms[arm + suffix]["seed_mean"][
                "auc_ovr_macro"]["estimate"]
        difference = table[fraction]["real+synthetic - real"]["auc_ovr_macro"]
        paired = evaluation.metrics["differences"][f"real+synthetic{suffix} - real{suffix}"]["auc_ovr_macro"]
        assert difference == {key: paired[key] for key in difference}
        assert difference["low"] <= difference["estimate"] <= difference["high"]
    rows = evaluation.efficiency
    assert [(r["arm"], r["fraction"]) for r in rows] == [("real", 0.5), ("real+synthetic", 0.5),
                                                         ("real", 1.0), ("real+synthetic", 1.0)]
    assert {r["arm"] for r in evaluation.roc} == {"real", "real-noaug", "real+synthetic", "synthetic"}


def test_no_trained_arm_and_an_unknown_positive_class_are_clear(trained_classifiers, tmp_path):
    config = trained_classifiers.config
    empty = config.model_copy(update={"paths": config.paths.model_copy(update={"classifiers": tmp_path})})
    with pytest.raises(ControlBreastError, match="no trained classifier"):
        evaluate_arms(empty)
    settings = config.evaluate.model_copy(update={"positive_class": "cancer"})
    wrong = config.model_copy(update={"evaluate": settings})
    with pytest.raises(ControlBreastError, match=r"evaluate\.positive_class 'cancer'"):
        evaluate_arms(wrong)
