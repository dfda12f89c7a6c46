"""evaluate-synthetic on a set that copies its training images: every check must see through it."""

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest

from controlbreast.data.imageio import load_png
from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.segmenter import train_segmenter
from controlbreast.evaluation.synthetic import (
    control_fidelity,
    evaluate_synthetic,
    real_classifier,
    shortcut_probe,
)
from controlbreast.outputs import csv_bytes, read_csv
from controlbreast.run_metrics import CAP
from controlbreast.stages import evaluate_synthetic as stage
from controlbreast.tracking import use_store
from synthetic_builders import NO_VARIATION, copies_set, prepared_phantom, tiny_judge


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    config = prepared_phantom(root, generate={"per_class": 5, "variation": NO_VARIATION},
                              synthetic_eval={"grid_rows": 4, "closest_pairs": 6, "kid_subsets": 20},
                              segmenter={"channels": [8, 16, 32], "steps": 120, "batch_size": 8})
    rows = copies_set(config)
    train_segmenter(config)
    tiny_judge(config, seed=0, val_auc=0.6)
    tiny_judge(config, seed=1, val_auc=0.7)
    evaluation = evaluate_synthetic(config)
    stage.write_outputs(config, evaluation)
    return config, rows, evaluation.report


def leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_copies_are_flagged_as_memorised(copies):
    _, rows, report = copies
    memorised = report["memorisation"]
    assert memorised["likely_copies"] == len(rows) == report["images"]
    assert memorised["synthetic"]["ssim"]["min"] == pytest.approx(1.0)
    assert memorised["synthetic"]["ssim"]["fraction_above_threshold"] == 1.0
    assert memorised["synthetic"]["feature_cosine"]["min"] == pytest.approx(1.0)
    reference = memorised["reference_real_val"]["ssim"]  # held-out real images are not copies
    assert reference["max"] < 1.0 and reference["fraction_above_threshold"] < 1.0


def test_separability_is_reported_overall_and_per_class_with_intervals(copies):
    config, _, report = copies
    found = report["separability"]
    assert set(found["per_class"]) <= set(config.data.classes) and found["per_class"]
    for value in [found["overall"], *found["per_class"].values()]:
        assert 0.0 <= value["low"] <= value["estimate"] <= value["high"] <= 1.0
    rows = read_csv(Path(config.paths.prepared) / "manifest.csv")
    assert found["overall"]["real"] == sum(row["split"] == "val" for row in rows)  # scored on real val only
    assert found["overall"]["synthetic"] + found["trained_on"]["synthetic"] == report["images"]
    train = sum(row["split"] == "train" for row in rows)  # the held-out half's sources are not learnt
    assert 0 < found["trained_on"]["real"] < train


def test_control_fidelity_of_images_drawn_exactly_to_their_controls(copies):
    _, _, report = copies
    fidelity = report["control_fidelity"]
    assert fidelity["edge_f1"]["matched"] == 1.0  # a copy's Canny edges are its control
    assert fidelity["edge_f1"]["shuffled"] < 0.8 and fidelity["edge_f1"]["ratio"] > 1.2
    assert all(c["matched"] == 1.0 and c["shuffled"] < 1.0 for c in fidelity["per_class"].values())
    ceiling = fidelity["reference_real_val"]["edge_f1"]  # real validation images, their own controls
    assert ceiling["matched"] == 1.0 and ceiling["shuffled"] < 0.8 and ceiling["ratio"] > 1.2


def test_control_fidelity_drops_for_images_with_someone_elses_control(copies):
    config, _, _ = copies
    folder = Path(config.paths.synthetic)
    ids = [row["id"] for row in read_csv(folder / "manifest.csv")]
    images = np.stack([load_png(folder / "images" / f"{i}.png") for i in ids])
    controls = np.stack([load_png(folder / "controls" / "edges" / f"{i}.png") for i in ids])[:, None]
    labels = np.zeros(len(ids), dtype=int)
    own = control_fidelity(images, controls, labels, config)["edge_f1"]["matched"]
    other = control_fidelity(images, np.roll(controls, 1, axis=0), labels, config)["edge_f1"]["matched"]
    assert own == 1.0 and other < 0.8


def test_a_copy_places_its_lesion_where_its_source_mask_is(copies):
    config, _, report = copies
    placed = report["lesion_placement"]
    assert placed["images"] == sum(placed["per_class"][c]["images"] for c in config.data.lesion_labels)
    assert placed["images"] > 0 and placed["per_class"]["normal"] == {"images": 0}  # no lesion to place
    assert placed["matched"] > placed["shuffled"] and placed["reference_real_val"]["images"] > 0


def test_realism_and_class_fidelity_have_their_real_references(copies):
    config, _, report = copies
    realism = report["realism"]
    assert set(realism["per_class"]) == set(config.data.classes)
    assert realism["overall"]["kid_subset_size"] <= min(realism["overall"]["synthetic"],
                                                        realism["overall"]["real"])
    assert realism["reference_real_val"]["overall"]["real"] == realism["overall"]["real"]
    matched = realism["synthetic_at_reference_size"]["overall"]  # same size as the reference
    assert matched["synthetic"] == realism["reference_real_val"]["overall"]["synthetic"]
    assert realism["overall"]["precision"] == 1.0  # copies lie inside the real manifold
    assert "inception_fid" not in realism  # no local weights: no Inception, and no download
    classes = report["class_fidelity"]
    assert 0.0 <= classes["accuracy"] <= 1.0 and set(classes["recall"]) == set(config.data.classes)
    assert "accuracy" in classes["reference_real_val"]


def test_the_judge_is_the_real_classifier_with_the_best_validation_auc(copies):
    config, _, report = copies
    assert Path(report["classifier"]).name == "seed-1" == real_classifier(config).name
    # these judges were saved without a validation interval: no evidence of skill, so flagged
    assert report["judge"]["at_chance"] is True and report["judge"]["val_auc"] == 0.7
    chosen = config.model_copy(update={"synthetic_eval": config.synthetic_eval.model_copy(
        update={"classifier_seed": 0})})
    assert real_classifier(chosen).name == "seed-0"


def test_metrics_file_and_grids(copies):
    config, _, report = copies
    saved = json.loads((Path(config.paths.metrics) / "synthetic.json").read_text())
    assert saved["images"] == report["images"]
    assert all(isinstance(v, int | float | str) for _, v in leaves(saved))  # dvc metrics show reads it
    grids = Path(config.paths.reports) / "synthetic"
    names = sorted(p.name for p in grids.iterdir())
    assert names == ["closest-pairs.png", *sorted(f"grid-{c}.png" for c in config.data.classes)]
    grid = load_png(grids / "grid-benign.png")
    size, gap = config.data.image_size, 2
    assert grid.shape == (4 * (size + gap), 3 * (size + gap))  # real | control | synthetic, 4 rows
    pairs = load_png(grids / "closest-pairs.png")
    left, middle = pairs[:size, :size], pairs[:size, size + gap:2 * size + gap]
    assert np.array_equal(left, middle)  # the closest pair of a copy is the image itself


def test_a_synthetic_image_from_a_test_control_is_refused(copies, tmp_path):
    config, _, _ = copies
    leaked = config.model_copy(update={"paths": config.paths.model_copy(update={
        "synthetic": tmp_path / "synthetic", "metrics": tmp_path / "metrics"})})
    shutil.copytree(config.paths.synthetic, leaked.paths.synthetic)
    test_id = next(r["id"] for r in read_csv(Path(config.paths.prepared) / "manifest.csv")
                   if r["split"] == "test")
    table = read_csv(leaked.paths.synthetic / "manifest.csv")
    table[0]["control_id"] = test_id
    (leaked.paths.synthetic / "manifest.csv").write_bytes(csv_bytes(table, list(table[0])))
    with pytest.raises(ControlBreastError, match="outside the training split"):
        evaluate_synthetic(leaked)
    assert not (tmp_path / "metrics").exists()


def test_stage_logs_numbers_and_grids_to_mlflow(copies, tmp_path):
    import yaml

    config, _, _ = copies
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    stage.main(params)
    use_store(config)
    run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'evaluate_synthetic'",
                             output_format="list")[0]
    assert run.data.metrics["likely_copies"] == 15  # the headline columns (run_metrics), not every number
    assert "edge_f1_ratio" in run.data.metrics and len(run.data.metrics) <= CAP
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "tables")} == {
        "tables/synthetic.json"}
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "grids")}
    assert "grids/closest-pairs.png" in logged and "grids/grid-normal.png" in logged


def test_the_shortcut_probe_reads_each_drawable_mixed_arm_and_skips_the_rest(copies):
    config, _, report = copies
    assert set(report["shortcut_probe"]) == {"real+synthetic@0.5"}  # 5 a class cannot feed 17 real at 1
    small = config.model_copy(update={"classifier": config.classifier.model_copy(update={"mix_ratio": 0.2})})
    probe, skipped = shortcut_probe(small)
    assert skipped == []
    assert set(probe) == {"real+synthetic@0.5", "real+synthetic"}
    assert all(found["synthetic"] > 0 for found in probe.values())
    assert report["shortcut_probe"]["real+synthetic@0.5"]["source_class_auc"] == 0.5  # ratio 1 in every class
