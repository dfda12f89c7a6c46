"""AUC and its bootstrap interval: what model selection and promotion rely on."""

import numpy as np

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
