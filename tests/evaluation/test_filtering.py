"""The label-consistency filter: each fraction's classifier sees that fraction's training images only
and judges only the synthetic images made from them; verdicts keep an image when its intended class
is likely enough and it is no copy of a training image."""

from pathlib import Path

import numpy as np
import pytest

from classifier_builders import prepare_phantom, split_ids, write_synthetic
from controlbreast.data.imageio import encode_png, load_png
from controlbreast.data.manifest import FilterRow, SyntheticRow, read_manifest
from controlbreast.data.subsets import subset_ids
from controlbreast.evaluation.filtering import filter_folder, filter_synthetic, train_filter


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    root = tmp_path_factory.mktemp("filter")
    config = prepare_phantom(root, synthetic_filter={"epochs": 3, "threshold": 0.4})
    assert config.classifier.real_fractions == (0.5, 1.0)
    train = split_ids(config, "train")
    folder = write_synthetic(config, train[:16])
    rows = read_manifest(folder / "manifest.csv", SyntheticRow)
    for row in rows[:3]:  # exact copies of their source image
        image = load_png(Path(config.paths.prepared) / "images" / f"{row.control_id}.png")
        (folder / "images" / f"{row.id}.png").write_bytes(encode_png(image))
    card = train_filter(config)
    summary = filter_synthetic(config)
    verdicts = read_manifest(Path(config.paths.synthetic_filter) / "verdicts.csv", FilterRow)
    return config, card, summary, verdicts, rows


def test_each_fractions_filter_sees_that_fractions_training_images_only(filtered):
    config, card, *_ = filtered
    whole, half = card["fractions"][1.0]["train_ids"], card["fractions"][0.5]["train_ids"]
    assert sorted(whole) == sorted(split_ids(config, "train"))
    assert set(half) == subset_ids(config, 0.5) and len(half) < len(whole)
    assert not set(whole) & set(split_ids(config, "val") + split_ids(config, "test"))
    assert (filter_folder(config, 0.5) / "classifier.json").is_file()


def test_a_fractions_verdicts_judge_only_the_images_made_from_its_controls(filtered):
    config, _, summary, _, rows = filtered
    half = read_manifest(Path(config.paths.synthetic_filter) / "verdicts@0.5.csv", FilterRow)
    made = [r.id for r in rows if r.control_id in subset_ids(config, 0.5)]
    assert [v.id for v in half] == made and 0 < len(made) < len(rows)
    assert summary["fractions"]["0.5"]["images"] == len(made)
    assert summary["fractions"]["0.5"]["kept"] == sum(v.kept for v in half)


def test_verdicts_keep_likely_intended_images_and_drop_copies(filtered):
    _, _, summary, verdicts, rows = filtered
    assert [v.id for v in verdicts] == [r.id for r in rows]
    assert all(v.likely_copy for v in verdicts[:3]) and not any(v.kept for v in verdicts[:3])
    for verdict in verdicts:
        assert verdict.kept == (verdict.probability >= 0.4 and not verdict.likely_copy)
    assert summary["kept"] == sum(v.kept for v in verdicts) and summary["likely_copies"] >= 3
    assert sum(c["made"] for c in summary["per_class"].values()) == len(rows)
    assert 0.0 <= min(v.probability for v in verdicts) <= max(v.probability for v in verdicts) <= 1.0
    assert np.isfinite([v.copy_cosine for v in verdicts]).all()
