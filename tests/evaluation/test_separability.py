"""The real-vs-synthetic classifier two-sample test sees obvious fakes and is fooled by real images."""

import numpy as np
import pytest

from controlbreast.classify.config import ClassifierConfig
from controlbreast.data.phantom import PHANTOM_LABELS, render_phantom
from controlbreast.evaluation.separability import TwoSamples, separability, source_class_auc, split_by_control

SETTINGS = ClassifierConfig(model_kwargs={"channels": [8, 8, 16, 16], "stem_width": 8}, batch_size=32,
                            threads=1)
CLASSES = tuple(PHANTOM_LABELS)


def phantoms(first_patient: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(3 * per_class, 32, 32) phantom images of distinct patients, and their class indices."""
    images = [render_phantom(label, first_patient + k, 0, 32)[0]
              for label in CLASSES for k in range(per_class)]
    return np.stack(images), np.repeat(np.arange(len(CLASSES)), per_class)


def noise_like(images: np.ndarray, seed: int) -> np.ndarray:
    """Uniform noise with each image's mean: the same brightness, no anatomy at all."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 2, images.shape) * images.mean(axis=(1, 2), keepdims=True)
    return np.clip(noise, 0, 255).astype(np.uint8)


def samples(real_start: int, other: np.ndarray | None, other_start: int, per_class: int) -> TwoSamples:
    real, real_labels = phantoms(real_start, per_class)
    second, labels = phantoms(other_start, per_class)
    return TwoSamples(real, real_labels, second if other is None else other, labels)


def test_noise_is_told_apart_from_real_images_in_every_class():
    train = samples(0, None, 1000, 30)
    train = TwoSamples(train.real, train.real_labels, noise_like(train.other, 0), train.other_labels)
    held = samples(2000, None, 3000, 20)
    held = TwoSamples(held.real, held.real_labels, noise_like(held.other, 1), held.other_labels)
    report = separability(train, held, CLASSES, SETTINGS, epochs=3, resamples=200)
    assert report["overall"]["estimate"] > 0.95 and report["overall"]["low"] > 0.9
    assert set(report["per_class"]) == set(CLASSES)
    assert all(c["estimate"] > 0.9 for c in report["per_class"].values())
    assert report["overall"]["real"] == report["overall"]["synthetic"] == 60


def test_a_second_real_sample_of_the_same_data_is_indistinguishable():
    train, held = samples(0, None, 1000, 30), samples(2000, None, 3000, 30)
    report = separability(train, held, CLASSES, SETTINGS, epochs=3, resamples=200)
    overall = report["overall"]
    assert abs(overall["estimate"] - 0.5) < 0.15
    assert overall["low"] < 0.5 < overall["high"]


def test_split_by_control_keeps_each_control_on_one_side():
    controls = [f"c{i % 7}" for i in range(40)]
    training = split_by_control(controls, seed=3)
    for control in set(controls):
        sides = {bool(t) for c, t in zip(controls, training, strict=True) if c == control}
        assert len(sides) == 1
    assert 0 < training.sum() < len(controls)


def test_the_shortcut_probe_is_chance_at_equal_ratios_and_one_when_a_class_is_all_synthetic():
    labels = np.repeat([0, 1, 2], [40, 20, 10])
    equal = np.concatenate([np.arange(40) < 10, np.arange(20) < 5, np.arange(10) < 3])  # ~0.25 everywhere
    assert abs(source_class_auc(labels, equal) - 0.5) < 0.03
    one_class = labels == 2
    assert source_class_auc(labels, one_class) == pytest.approx(1.0)
    skewed = np.concatenate([np.arange(40) < 2, np.arange(20) < 10, np.arange(10) < 9])
    assert 0.75 < source_class_auc(labels, skewed) < 1.0
    assert source_class_auc(labels, np.zeros(70, bool)) is None
