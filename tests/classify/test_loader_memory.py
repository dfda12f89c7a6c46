"""The classifier's synthetic data at scale: a 4,000-image set is not decoded whole to draw from it,
and decoding goes straight into one array (no list of images beside its stacked copy)."""

import tracemalloc

import pytest

from builders import make_config
from classifier_builders import split_ids, write_synthetic
from controlbreast.classify.data import load_training_data
from controlbreast.data.ingest import ingest

SET = 4000
SIDE = 64


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    config = make_config(root, data={"image_size": SIDE}, paths={"synthetic": str(root / "synthetic")},
                         phantom={"patients_per_class": 14, "max_images_per_patient": 1, "render_size": 64})
    ingest(config)
    train = split_ids(config, "train")
    write_synthetic(config, [train[n % len(train)] for n in range(SET)])
    return config


def peak_mib(config, mix_ratio: float) -> tuple[float, int]:
    """Peak traced MiB (numpy included) of loading the real+synthetic arm, and its synthetic count
    (drawn from the whole set, ``pooled``: the set's classes need not match the real split's ratio)."""
    config = config.model_copy(update={"classifier": config.classifier.model_copy(
        update={"mix_ratio": mix_ratio, "synthetic_draw": "pooled"})})
    tracemalloc.start()
    data = load_training_data(config, "real+synthetic", seed=0)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak, data.synthetic_images


def test_a_small_draw_from_a_large_set_does_not_decode_the_set(config):
    whole_set = SET * SIDE * SIDE / 2**20  # 15.6 MiB of decoded images
    peak, drawn = peak_mib(config, 1.0)
    assert drawn == len(split_ids(config, "train"))
    assert peak < 0.6 * whole_set  # the manifest's rows, the real split and the draw


def test_drawing_the_whole_set_holds_it_about_twice(config):
    whole_set = SET * SIDE * SIDE / 2**20
    peak, drawn = peak_mib(config, SET / len(split_ids(config, "train")))
    assert drawn == SET
    assert peak < 2.5 * whole_set  # the drawn array and its concatenation with the real split
