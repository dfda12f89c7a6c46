"""The lesion segmenter that judges lesion placement: trained on real masks, it finds the lesions of
held-out real images (Dice with their own masks) and not the lesions of other images of the class."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from builders import make_config
from controlbreast.data.datasets import load_image_set
from controlbreast.data.ingest import ingest
from controlbreast.errors import MissingInputError
from controlbreast.evaluation.segmenter import (
    LesionUNet,
    dice_against_masks,
    load_segmenter,
    masks_of,
    train_segmenter,
)
from controlbreast.outputs import csv_bytes, read_csv

TINY = {"channels": [8, 16, 32], "steps": 150, "batch_size": 8}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """12 single-view phantom patients per class at 32 px (views of one patient share a lesion's place,
    which would make shuffled masks look found) and the segmenter trained on their training split."""
    config = make_config(tmp_path_factory.mktemp("segmenter"), data={"image_size": 32}, segmenter=TINY,
                         phantom={"patients_per_class": 12, "max_images_per_patient": 1, "render_size": 64})
    ingest(config)
    return config, train_segmenter(config)


def test_held_out_lesions_are_found_in_their_own_masks_not_in_shuffled_ones(trained):
    _, card = trained
    dice = card["val_dice"]
    assert dice["images"] >= 3 and card["train_masks"] > 0
    assert dice["matched"] >= 0.7 and dice["shuffled"] <= 0.5 * dice["matched"]


def test_the_saved_segmenter_reloads_and_its_metrics_are_numbers(trained):
    config, card = trained
    segmenter = load_segmenter(Path(config.paths.models) / "segmenter")
    val = load_image_set(config.paths.prepared, config.data.classes, ("val",))
    masks, _ = masks_of(Path(config.paths.prepared), val, config.data.lesion_labels)
    assert dice_against_masks(segmenter.masks(val.images), masks, val.labels, 0) == card["val_dice"]
    metrics = json.loads((Path(config.paths.metrics) / "segmenter.json").read_text())
    assert metrics == json.loads(json.dumps(card))
    assert all(isinstance(v, int | float) for v in [*metrics.values(), *metrics["val_dice"].values()]
               if not isinstance(v, dict))


def test_any_image_size_segments_to_its_own_size():
    model = LesionUNet([4, 8, 8])
    assert model(torch.zeros(2, 1, 37, 50)).shape == (2, 1, 37, 50)


def test_a_set_without_masks_gets_a_card_and_no_segmenter(tmp_path):
    config = make_config(tmp_path, data={"image_size": 32}, segmenter=TINY,
                         phantom={"patients_per_class": 3, "max_images_per_patient": 1, "render_size": 64})
    ingest(config)
    table = Path(config.paths.prepared) / "manifest.csv"
    rows = read_csv(table)
    table.write_bytes(csv_bytes([{**row, "has_mask": "False"} for row in rows], rows[0]))
    card = train_segmenter(config)
    assert card["train_masks"] == 0 and "val_dice" not in card
    assert load_segmenter(Path(config.paths.models) / "segmenter") is None
    with pytest.raises(MissingInputError, match="train-segmenter"):
        load_segmenter(tmp_path / "nowhere")


def test_dice_is_measured_only_where_there_is_a_lesion():
    found = np.zeros((3, 8, 8), bool)
    masks = np.zeros((3, 8, 8), bool)
    found[0, :4], masks[0, :4], masks[1, 4:] = True, True, True
    summary = dice_against_masks(found, masks, np.array([1, 1, 0]), seed=0)
    assert summary["images"] == 2  # the empty third mask is a normal image: nothing to place
    assert summary["matched"] == 0.5 and summary["shuffled"] == 0.0  # found: the first lesion only
