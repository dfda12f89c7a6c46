"""One classifier's training loop, and the arms × seeds stage with its MLflow runs."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from classifier_builders import split_ids
from controlbreast.classify.arm_training import train_jobs
from controlbreast.classify.data import load_training_data, recipe
from controlbreast.classify.models import load_classifier
from controlbreast.classify.train import batch_transform, class_weights, epoch_order, train_classifier
from controlbreast.outputs import read_csv
from controlbreast.tracking import use_store


@pytest.fixture(scope="module")
def config(trained_classifiers):
    return trained_classifiers.config


def test_training_and_selection_never_see_the_test_split(config):
    classifier = config.classifier.model_copy(update={"epochs": 1})
    result = train_classifier(config.model_copy(update={"classifier": classifier}), "real+synthetic", seed=0)
    held_out = set(split_ids(config, "test"))
    assert not held_out & set(result.train_ids) and not held_out & set(result.val_ids)
    assert sorted(result.val_ids) == sorted(split_ids(config, "val"))
    real_train = [i for i in result.train_ids if not i.startswith("syn-")]
    assert sorted(real_train) == sorted(split_ids(config, "train"))


def test_kept_epoch_is_the_best_validation_auc_and_patience_stops(config, monkeypatch):
    import controlbreast.classify.train as training

    scripted = iter([0.6, 0.7, 0.65, 0.68, 0.9, 0.95])  # two epochs without gain after the 2nd
    real_validate = training._validate
    monkeypatch.setattr(training, "_validate", lambda model, inputs, labels: {
        **real_validate(model, inputs, labels), "val_auc": next(scripted)})
    classifier = config.classifier.model_copy(update={"epochs": 6, "patience": 2})
    history = []
    result = train_classifier(config.model_copy(update={"classifier": classifier}), "real", seed=3,
                              on_epoch=lambda epoch, values: history.append((epoch, values["val_auc"])))
    assert history == [(1, 0.6), (2, 0.7), (3, 0.65), (4, 0.68)]  # stopped by patience at epoch 4
    assert result.card.epoch == 2 and result.card.val_auc == 0.7


def test_same_seed_same_model(config):
    classifier = config.classifier.model_copy(update={"epochs": 1})
    quick = config.model_copy(update={"classifier": classifier})
    data = load_training_data(quick, "real", seed=5)
    first, second = (train_classifier(quick, "real", seed=5, data=data) for _ in range(2))
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(value, second.model.state_dict()[key], rtol=0, atol=0)


def test_real_noaug_trains_on_the_real_split_untouched_and_real_gets_classic_augmentation(config):
    noaug, real = (load_training_data(config, arm, seed=0) for arm in ("real-noaug", "real"))
    assert noaug.train.ids == real.train.ids and (noaug.synthetic_images, real.synthetic_images) == (0, 0)
    batch = torch.from_numpy(real.train.images[:8]).float().unsqueeze(1) / 255.0
    untouched, augmented = (batch_transform(config, recipe(config, arm).augment)(
        batch.clone(), torch.Generator().manual_seed(0)) for arm in ("real-noaug", "real"))
    assert torch.equal(untouched, batch)
    assert (augmented - batch).abs().mean() > 0.01


def test_class_weights_and_balanced_sampler():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 4)
    weights = class_weights(labels, 3)
    torch.testing.assert_close(weights, torch.tensor([12 / 18, 12 / 6, 12 / 12]))
    assert torch.allclose(class_weights(np.array([0, 1, 2]), 3), torch.ones(3))
    drawn = epoch_order(np.repeat(labels, 100), "sampler", torch.Generator().manual_seed(0))
    shares = np.bincount(np.repeat(labels, 100)[drawn.numpy()], minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)
    order = epoch_order(labels, "weights", torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(labels)))


def test_stage_writes_every_arm_and_seed_with_history_and_summary(config):
    root = Path(config.paths.classifiers)
    for arm, seeds in (("real", [0, 1]), ("real-noaug", [0]), ("real+synthetic", [0]), ("synthetic", [0])):
        summary = json.loads((root / arm / "summary.json").read_text())
        assert [s["seed"] for s in summary["seeds"]] == seeds
        for entry in summary["seeds"]:
            folder = root / arm / f"seed-{entry['seed']}"
            _, card = load_classifier(folder)
            history = read_csv(folder / "history.csv")
            assert (card.arm, card.seed, card.epoch) == (arm, entry["seed"], entry["epoch"])
            assert (card.modality, card.patches) == ("ultrasound", False)  # what predict prepares for
            assert float(history[card.epoch - 1]["val_auc"]) == pytest.approx(card.val_auc)
            assert max(float(h["val_auc"]) for h in history) == pytest.approx(card.val_auc)
            assert card.val_auc_low <= card.val_auc <= card.val_auc_high  # its bootstrap interval
            assert card.at_chance == (card.val_auc_low <= 0.5)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no build folders left


def test_mlflow_runs_nest_arms_and_seeds_with_epochs_and_models(config):
    use_store(config)
    client = MlflowClient()
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    stages = [r for r in runs if r.data.tags.get("stage") == "train_classifier"]
    assert len(stages) == 2
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert {"real", "real+synthetic", "synthetic", "real/seed-0", "real/seed-1", "real+synthetic/seed-0",
            "synthetic/seed-0"} <= set(children)
    seed_run = children["real/seed-1"]
    assert seed_run.data.tags["mlflow.parentRunId"] == children["real"].info.run_id
    assert len(client.get_metric_history(seed_run.info.run_id, "val_auc")) == 3  # one per epoch
    assert seed_run.data.params["arm"] == "real" and seed_run.data.params["seed"] == "1"
    summary = json.loads((Path(config.paths.classifiers) / "real" / "summary.json").read_text())
    info = mlflow.models.get_model_info(summary["seeds"][1]["model_uri"])
    assert [c["name"] for c in info.signature.inputs.to_dict()] == ["image"]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["normal", "benign", "malignant"]
    assert info.saved_input_example_info is not None
    assert client.get_logged_model(info.model_id).name == "real-seed-1"
    inputs = {found.dataset.name: {t.key: t.value for t in found.tags}["mlflow.data.context"]
              for found in seed_run.inputs.dataset_inputs}
    assert inputs == {"prepared/train": "training", "prepared/val": "validation"}
    mixed = children["real+synthetic/seed-0"].inputs.dataset_inputs
    assert "synthetic" in {found.dataset.name for found in mixed}


def test_the_stage_checks_the_timm_model_before_any_run_or_data(tmp_path):
    from builders import make_config
    from classifier_builders import write_params
    from controlbreast.errors import ConfigError
    from controlbreast.stages import train_classifier as stage

    bad = make_config(tmp_path, classifier={"model": "resnet10t", "model_kwargs": {"widths": [8]}})
    params = write_params(bad, tmp_path / "params.yaml")
    with pytest.raises(ConfigError, match=r"classifier\.model_kwargs: .*argument 'widths'"):
        stage.main(params, ["real"])
    assert not Path(bad.paths.mlruns).exists()  # stopped before opening a run (and before the data)


def test_workers_train_the_same_models_as_one_process(config):
    """Two spawned workers side by side give each job exactly the weights one process gives it, in
    job order."""
    jobs = [("real", 1.0, 0), ("real+synthetic", 1.0, 1), ("real", 0.5, 1)]
    results = {}
    for workers in (1, 2):
        classifier = config.classifier.model_copy(update={"workers": workers})
        results[workers] = list(train_jobs(config.model_copy(update={"classifier": classifier}), jobs))
    assert [(r.card.arm, r.card.seed) for r in results[2]] == [("real", 0), ("real+synthetic", 1),
                                                               ("real@0.5", 1)]
    for one, two in zip(results[1], results[2], strict=True):
        assert one.history == two.history
        assert all(torch.equal(one.model.state_dict()[k], v) for k, v in two.model.state_dict().items())
