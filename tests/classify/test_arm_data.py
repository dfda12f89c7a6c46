"""What each arm trains on, and that no validation or test image leaks into training."""

from pathlib import Path

import pytest

from classifier_builders import split_ids, write_synthetic
from controlbreast.classify.data import check_provenance, load_training_data
from controlbreast.errors import ControlBreastError


def with_paths(config, **paths):
    return config.model_copy(update={"paths": config.paths.model_copy(update=paths)})


def with_classifier(config, **settings):
    return config.model_copy(update={"classifier": config.classifier.model_copy(update=settings)})


@pytest.fixture(scope="module")
def config(trained_classifiers):
    return trained_classifiers.config


def test_real_arm_is_the_training_split_and_validation_the_validation_split(config):
    data = load_training_data(config, "real", seed=0)
    assert sorted(data.train.ids) == sorted(split_ids(config, "train"))
    assert sorted(data.val.ids) == sorted(split_ids(config, "val"))
    assert (data.real_images, data.synthetic_images) == (len(data.train), 0)


@pytest.mark.parametrize(("arm", "mix_ratio", "real", "synthetic"),
                         [("real+synthetic", 1.0, 1.0, 1.0), ("real+synthetic", 0.5, 1.0, 0.5),
                          ("synthetic", 1.0, 0.0, 1.0)])
def test_synthetic_arms_count_as_documented(config, arm, mix_ratio, real, synthetic):
    n_real = len(split_ids(config, "train"))
    data = load_training_data(with_classifier(config, mix_ratio=mix_ratio), arm, seed=0)
    synthetic_ids = [i for i in data.train.ids if i.startswith("syn-")]
    assert data.synthetic_images == len(synthetic_ids) == round(synthetic * n_real)
    assert data.real_images == len(data.train) - len(synthetic_ids) == round(real * n_real)
    assert data.train.images.shape[1:] == (32, 32)


def test_test_split_never_reaches_any_arm(config):
    held_out = set(split_ids(config, "test"))
    for arm in ("real", "real+synthetic", "synthetic"):
        data = load_training_data(config, arm, seed=1)
        assert not held_out & set(data.train.ids) and not held_out & set(data.val.ids)
        assert set(data.train.splits) <= {"train", "synthetic"} and set(data.val.splits) == {"val"}


def test_each_seed_draws_other_synthetic_images(config):
    draws = [set(load_training_data(with_classifier(config, mix_ratio=0.5), "real+synthetic", seed).train.ids)
             for seed in (0, 1)]
    assert draws[0] != draws[1]


@pytest.mark.parametrize("split", ["val", "test"])
def test_provenance_rejects_a_synthetic_image_made_from_a_held_out_control(config, tmp_path, split):
    leaky = with_paths(config, synthetic=tmp_path / "synthetic")
    outsider = split_ids(config, split)[0]
    folder = write_synthetic(leaky, [*split_ids(config, "train")[:3], outsider])
    with pytest.raises(ControlBreastError, match=f"outside the training split.*{outsider}"):
        check_provenance(folder, set(split_ids(config, "train")))
    with pytest.raises(ControlBreastError, match=outsider):
        load_training_data(leaky, "synthetic", seed=0)


def test_too_few_synthetic_images_name_the_knob(config, tmp_path):
    small = with_paths(config, synthetic=tmp_path / "synthetic")
    write_synthetic(small, split_ids(config, "train")[:4])
    with pytest.raises(ControlBreastError, match=r"classifier\.mix_ratio"):
        load_training_data(small, "real+synthetic", seed=0)


def test_missing_synthetic_set_and_unknown_arm_are_clear(config, tmp_path):
    with pytest.raises(ControlBreastError, match="manifest"):
        load_training_data(with_paths(config, synthetic=tmp_path / "none"), "synthetic", seed=0)
    with pytest.raises(ValueError, match="unknown arm"):
        load_training_data(config, "fake", seed=0)
    assert not Path(tmp_path / "none").exists()
