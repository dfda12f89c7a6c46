"""A generator per real fraction (classifier.fraction_generator: subset): trained on the fraction's
images alone, drawing from their controls alone, and what the fraction's arms then draw."""

from collections import Counter
from pathlib import Path

import pytest

from builders import make_config, tiny_config
from controlbreast.classify.config import RecipeConfig
from controlbreast.classify.data import load_training_data, synthetic_folder
from controlbreast.data.manifest import PreparedRow, SyntheticRow, read_manifest
from controlbreast.data.subsets import fraction_config, subset_ids
from controlbreast.diffusion.data import load_latents
from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.recipes import generator_images
from controlbreast.generation.fractions import train_fraction_generator
from synthetic_builders import prepared_phantom

SUBSET = {"real_fractions": [0.5, 1.0], "fraction_generator": "subset"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 32 px phantom, then the generator of fraction 0.5 (4 steps each) and its set."""
    prepared = prepared_phantom(tmp_path_factory.mktemp("prepared"))
    root = tmp_path_factory.mktemp("fractions")
    config = tiny_config(root, prepared, classifier=SUBSET,
                         paths={"fraction_generators": str(root / "fraction-generators")})
    return config, train_fraction_generator(config, 0.5, progress=False)


def test_the_fractions_generator_sees_its_subset_alone(trained):
    config, summary = trained
    subset = subset_ids(config, 0.5)
    own = fraction_config(config, 0.5)
    ids, _, _ = load_latents(Path(own.paths.models) / "base" / "latents.safetensors")
    assert set(ids) == subset and summary["real_images"] == len(subset)
    assert len(subset) < len(subset_ids(config, 1.0))
    assert (Path(own.paths.models) / "controlnet" / "control.json").is_file()


def test_its_set_comes_from_the_subsets_controls_in_the_subsets_proportions(trained):
    config, summary = trained
    rows = read_manifest(Path(fraction_config(config, 0.5).paths.synthetic) / "manifest.csv", SyntheticRow)
    subset = subset_ids(config, 0.5)
    assert {row.control_id for row in rows} <= subset and summary["synthetic"]["images"] == len(rows)
    labels = {r.id: r.label for r in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)}
    assert Counter(row.label for row in rows) == Counter(labels[i] for i in subset)  # auto: mix ratio 1


def test_the_fraction_arms_draw_their_own_generators_set(tmp_path):
    config = make_config(tmp_path, classifier=SUBSET)
    own = Path(fraction_config(config, 0.5).paths.synthetic)
    assert synthetic_folder(config, RecipeConfig(), 0.5) == own
    assert synthetic_folder(config, RecipeConfig(), 1.0) == Path(config.paths.synthetic)


def test_a_subset_generator_refuses_recipes_of_the_whole_splits_other_sets(tmp_path):
    with pytest.raises(ControlBreastError, match=r"fraction_generator: subset .*\['real\+filtered'\]"):
        make_config(tmp_path, classifier={**SUBSET, "recipes": {"real+filtered": {"synthetic": "filtered"}}})


def test_each_fraction_row_says_what_its_generator_was_trained_on(trained):
    config, _ = trained
    whole = config.model_copy(update={"classifier": config.classifier.model_copy(
        update={"fraction_generator": "whole"})})
    everything = len(subset_ids(config, 1.0))
    assert generator_images(whole) == {0.5: everything, 1.0: everything}
    assert generator_images(config) == {0.5: len(subset_ids(config, 0.5)), 1.0: everything}


def test_the_arm_at_the_fraction_trains_on_the_fraction_set(trained):
    config, _ = trained
    data = load_training_data(config, "real+synthetic", seed=0, fraction=0.5)
    drawn = {i for i in data.train.ids if i.startswith("syn-")}
    own = {r.id for r in read_manifest(Path(fraction_config(config, 0.5).paths.synthetic) / "manifest.csv",
                                       SyntheticRow)}
    assert drawn and drawn <= own  # no whole-split set exists here: none is needed below 1
