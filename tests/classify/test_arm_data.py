"""What each arm trains on, and that no validation or test image leaks into training."""

from collections import Counter
from pathlib import Path

import pytest

from classifier_builders import prepare_phantom, split_ids, write_synthetic
from controlbreast.classify.config import ClassifierConfig, RecipeConfig
from controlbreast.classify.data import (
    arm_plan,
    check_provenance,
    load_training_data,
)
from controlbreast.data.imageio import encode_png, load_png
from controlbreast.data.manifest import FilterRow, PreparedRow, SyntheticRow, manifest_bytes, read_manifest
from controlbreast.data.subsets import training_subsets
from controlbreast.errors import ControlBreastError
from controlbreast.mixing import synthetic_needed


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


@pytest.mark.parametrize("seed", [0, 1])
def test_a_fraction_arm_trains_on_its_subset_and_synthetic_images_of_its_controls_only(config, seed):
    subset = training_subsets(config)[0.5]
    assert 0 < len(subset) < len(split_ids(config, "train"))
    real = load_training_data(config, "real", seed, fraction=0.5)
    assert set(real.train.ids) == subset and real.synthetic_images == 0
    mixed = load_training_data(config, "real+synthetic", seed, fraction=0.5)
    control_of = {row.id: row.control_id
                  for row in read_manifest(Path(config.paths.synthetic) / "manifest.csv", SyntheticRow)}
    synthetic = [i for i in mixed.train.ids if i in control_of]
    assert {control_of[i] for i in synthetic} <= subset  # no control from outside the fraction
    assert len(synthetic) == mixed.synthetic_images == round(config.classifier.mix_ratio * len(subset))
    assert set(mixed.train.ids) - set(synthetic) == subset


def test_fractions_are_only_for_the_real_and_real_synthetic_arms_and_listed_ones(config):
    with pytest.raises(ValueError, match="unknown arm"):
        load_training_data(config, "synthetic", seed=0, fraction=0.5)
    with pytest.raises(ControlBreastError, match="real_fractions"):
        load_training_data(config, "real", seed=0, fraction=0.3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared phantom set alone (no classifiers), with auto synthetic counts."""
    root = tmp_path_factory.mktemp("auto")
    return prepare_phantom(root, generate={"per_class": "auto"})


def with_generate(config, **settings):
    return config.model_copy(update={"generate": config.generate.model_copy(update=settings)})


def test_synthetic_needed_follows_the_real_proportions_and_the_larger_draw():
    labels = ["a"] * 6 + ["b"] * 3 + ["c"]
    assert synthetic_needed(labels, ("a", "b", "c"), 1.0) == {"a": 6, "b": 3, "c": 1}
    assert synthetic_needed(labels, ("a", "b", "c"), 0.5) == {"a": 6, "b": 3, "c": 1}
    assert synthetic_needed(labels, ("a", "b", "c"), 2.5) == {"a": 15, "b": 8, "c": 3}
    with pytest.raises(ControlBreastError, match="no training image"):
        synthetic_needed(["x"], ("a", "b"), 1.0)


@pytest.mark.parametrize("mix_ratio", [1.0, 1.7])
def test_auto_per_class_makes_what_every_arm_draws(prepared, tmp_path, mix_ratio):
    from controlbreast.generation.generate import plan, shortfall, training_rows

    config = with_paths(with_classifier(prepared, mix_ratio=mix_ratio), synthetic=tmp_path / "synthetic")
    train = training_rows(config.paths.prepared)
    rows = plan(config, train)
    assert shortfall(config, train) is None
    assert len(rows) >= round(mix_ratio * len(train))
    write_synthetic(config, [row["control_id"] for row in rows])
    synthetic = load_training_data(config, "synthetic", seed=0)
    mixed = load_training_data(config, "real+synthetic", seed=0)
    assert mixed.synthetic_images == round(mix_ratio * len(train))
    if mix_ratio <= 1:  # the whole set: the real training split's class counts exactly
        real_counts = Counter(row.label for row in train)
        drawn = Counter(config.data.classes[label] for label in synthetic.train.labels)
        assert drawn == real_counts


def test_a_fixed_per_class_too_small_is_named_before_sampling_and_at_training(prepared, tmp_path):
    from controlbreast.generation.generate import plan, shortfall, training_rows

    config = with_paths(with_generate(prepared, per_class=3), synthetic=tmp_path / "synthetic")
    train = training_rows(config.paths.prepared)
    counts = Counter(row.label for row in train)
    needed = max(counts.values())  # the synthetic arm: as many of each class as the real split has
    problem = shortfall(config, train)
    assert "generate.per_class 3, but the arms draw up to" in problem and f"at least {needed}" in problem
    assert str(dict(counts)) in problem  # every class is short here: each named with its count
    assert shortfall(with_generate(config, per_class=needed - 1), train) is not None
    assert shortfall(with_generate(config, per_class=needed), train) is None
    pooled = with_classifier(config, synthetic_draw="pooled")
    assert f"at least {-(-len(train) // 3)}" in shortfall(pooled, train)
    write_synthetic(config, [row["control_id"] for row in plan(config, train)])
    with pytest.raises(ControlBreastError) as error:
        load_training_data(config, "synthetic", seed=0)
    assert "generate.per_class: auto" in str(error.value) and "mix_ratio" not in str(error.value)


RECIPES = {"real-repeat": RecipeConfig(real="repeat", synthetic="none"),
           "real+filtered": RecipeConfig(synthetic="filtered"),
           "synthetic-then-real": RecipeConfig(schedule="pretrain")}


def with_recipes(config, **settings):
    return with_classifier(config, recipes=RECIPES, **settings)


def drawn_per_class(config, data, prefix=None):
    ids_labels = zip(data.train.ids, data.train.labels, strict=True)
    return Counter(config.data.classes[k] for i, k in ids_labels if prefix is None or i.startswith(prefix))


@pytest.mark.parametrize("mix_ratio", [0.3, 1.0])
def test_the_synthetic_to_real_ratio_is_the_same_in_every_class(config, mix_ratio):
    real = Counter(r.label for r in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
                   if r.split == "train")
    data = load_training_data(with_classifier(config, mix_ratio=mix_ratio), "real+synthetic", seed=0)
    assert drawn_per_class(config, data, "syn-") == {c: round(mix_ratio * n) for c, n in real.items()
                                                     if round(mix_ratio * n)}


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_real_repeat_has_the_real_synthetic_arms_count_per_class_and_only_real_images(config, fraction):
    recipes = with_recipes(config, mix_ratio=0.4)
    repeat = load_training_data(recipes, "real-repeat", seed=3, fraction=fraction)
    mixed = load_training_data(recipes, "real+synthetic", seed=3, fraction=fraction)
    assert len(repeat.train) == len(mixed.train)
    assert drawn_per_class(config, repeat) == drawn_per_class(config, mixed)
    assert not any(i.startswith("syn-") for i in repeat.train.ids)
    assert set(repeat.train.ids) == set(load_training_data(config, "real", 0, fraction=fraction).train.ids)


def test_pretrain_recipe_holds_its_synthetic_images_apart_from_the_real_ones(config):
    data = load_training_data(with_recipes(config, mix_ratio=0.5), "synthetic-then-real", seed=0)
    assert all(i.startswith("syn-") for i in data.pretrain.ids)
    assert len(data.pretrain) == data.synthetic_images > 0
    assert sorted(data.train.ids) == sorted(split_ids(config, "train"))


def test_the_filtered_recipe_draws_only_kept_images_at_an_equal_lowered_ratio(config, tmp_path):
    recipes = with_paths(with_recipes(config, mix_ratio=1.0), synthetic_filter=tmp_path / "filter")
    with pytest.raises(ControlBreastError, match="filter-synthetic"):
        load_training_data(recipes, "real+filtered", seed=0)
    rows = read_manifest(Path(config.paths.synthetic) / "manifest.csv", SyntheticRow)
    kept = {row.id for n, row in enumerate(rows) if n % 2 == 0}
    verdicts = [{"id": r.id, "label": r.label, "probability": 0.9 if r.id in kept else 0.1,
                 "copy_cosine": 0.0, "copy_ssim": 0.0, "likely_copy": False, "kept": r.id in kept}
                for r in rows]
    (tmp_path / "filter").mkdir()
    (tmp_path / "filter" / "verdicts.csv").write_bytes(manifest_bytes(verdicts, FilterRow))
    data = load_training_data(recipes, "real+filtered", seed=0)
    drawn = [i for i in data.train.ids if i.startswith("syn-")]
    assert drawn and set(drawn) <= kept
    plan = arm_plan(recipes, "real+filtered", 0)
    real = Counter(plan.real_labels)
    assert plan.ratio < 1.0
    assert Counter(plan.synthetic_labels) == {c: round(plan.ratio * n) for c, n in real.items()}
    # below 1 the fraction's own filter judges: not the whole split's verdicts
    with pytest.raises(ControlBreastError, match=r"verdicts@0\.5\.csv: no filter verdicts"):
        load_training_data(recipes, "real+filtered", seed=0, fraction=0.5)
    (tmp_path / "filter" / "verdicts@0.5.csv").write_bytes(manifest_bytes(verdicts, FilterRow))
    with pytest.raises(ControlBreastError, match="another synthetic set or subset"):
        load_training_data(recipes, "real+filtered", seed=0, fraction=0.5)


def test_the_real_guided_recipe_draws_from_the_real_guided_set_only(config, tmp_path):
    recipes = {"real+guided": RecipeConfig(synthetic="guided")}
    folder = write_synthetic(with_paths(config, synthetic=tmp_path / "guided"), split_ids(config, "train"))
    for image in (folder / "images").iterdir():  # unlike any image of paths.synthetic
        image.write_bytes(encode_png(255 - load_png(image)))
    guided = with_paths(with_classifier(config, recipes=recipes), synthetic_guided=folder)
    data = load_training_data(guided, "real+guided", seed=0)
    drawn = [(i, image) for i, image in zip(data.train.ids, data.train.images, strict=True)
             if i.startswith("syn-")]
    plain = load_training_data(guided, "real+synthetic", 0)
    assert len(drawn) == data.synthetic_images == plain.synthetic_images
    for image_id, image in drawn:
        assert (image == load_png(folder / "images" / f"{image_id}.png")).all()


def test_a_recipe_name_that_shadows_a_built_in_arm_is_refused():
    with pytest.raises(ValueError, match="built-in arms"):
        ClassifierConfig(recipes={"real": {"synthetic": "all"}})
    with pytest.raises(ValueError, match="synthetic: none"):
        RecipeConfig(real="repeat", synthetic="all")
