"""AUC and its bootstrap interval: what model selection and promotion rely on."""

import numpy as np
import pytest

from controlbreast.classify.scores import macro_auc, macro_auc_interval


def test_the_interval_tells_skill_from_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    skilled = np.eye(3)[labels] * 2 + rng.normal(size=(120, 3))
    low, high = macro_auc_interval(skilled, labels)
    assert 0.5 < low <= macro_auc(skilled, labels) <= high
    noise = rng.random((120, 3))
    low, high = macro_auc_interval(noise, labels)
    assert low < 0.5 < high
    few = macro_auc_interval(noise[::8], labels[::8])
    assert few[1] - few[0] > high - low  # fewer validation images, a wider interval


def test_the_macro_auc_over_the_classes_a_set_has_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    labels = np.repeat([1, 2], 30)  # no class 0, as an external set without normal images
    probabilities = rng.dirichlet(np.ones(3), size=60) + np.eye(3)[labels] * 0.3
    assert np.isnan(macro_auc(probabilities, labels))  # class 0 absent: undefined over all three
    expected = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in (1, 2)])
    assert macro_auc(probabilities, labels, (1, 2)) == pytest.approx(expected, abs=1e-12)
