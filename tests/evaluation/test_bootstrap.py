"""Stratified resampling, percentile intervals and paired differences."""

import numpy as np
import pytest

from controlbreast.classify.scores import auc
from controlbreast.evaluation.bootstrap import (
    bootstrap_interval,
    paired_difference,
    resample_indices,
    two_sided_p,
)


def test_resamples_keep_each_class_count_and_stay_within_the_class():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 7)
    index = resample_indices(labels, 50, seed=1)
    assert index.shape == (50, 15)
    assert (labels[index] == labels[None, :]).all()
    assert not (index == np.arange(15)).all(axis=1).all()  # really resampled
    np.testing.assert_array_equal(index, resample_indices(labels, 50, seed=1))


def test_interval_covers_the_estimate_and_matches_normal_theory_for_a_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(size=400)
    labels = np.zeros(400, dtype=int)
    result = bootstrap_interval(lambda i: values[i].mean(-1), labels, resamples=2000, seed=0)
    assert result.estimate == pytest.approx(values.mean())
    assert result.low < result.estimate < result.high
    assert result.high - result.low == pytest.approx(2 * 1.96 * values.std() / 20, rel=0.1)


def test_auc_interval_covers_the_point_estimate():
    rng = np.random.default_rng(1)
    positive = np.arange(80) % 3 == 0
    scores = positive + rng.normal(size=80)
    result = bootstrap_interval(lambda i: auc(scores[i], positive[i]), positive, seed=2)
    assert result.low <= result.estimate <= result.high
    assert 0.5 < result.estimate < 1.0 and result.high - result.low > 0.05


def test_vector_statistic_gives_vector_intervals():
    values = np.arange(20.0).reshape(10, 2)
    result = bootstrap_interval(lambda i: values[i].mean(-2), np.zeros(10, int), resamples=200)
    assert len(result.estimate) == 2 and all(lo <= e <= hi for lo, e, hi in
                                             zip(result.low, result.estimate, result.high, strict=True))


def test_difference_of_a_model_with_itself_is_zero_with_p_one():
    rng = np.random.default_rng(3)
    positive = rng.random(50) < 0.5
    scores = rng.random(50)

    def statistic(i):
        return auc(scores[i], positive[i])

    result = paired_difference(statistic, statistic, positive)
    assert (result.estimate, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_finds_a_better_model_and_its_sign():
    rng = np.random.default_rng(4)
    positive = rng.random(200) < 0.5
    noise = rng.normal(size=200)
    good, poor = positive * 2.0 + noise, positive * 0.5 + noise

    result = paired_difference(lambda i: auc(good[i], positive[i]), lambda i: auc(poor[i], positive[i]),
                               positive, resamples=1000)
    assert result.estimate > 0 and result.low > 0 and result.p_value < 0.01
    reverse = paired_difference(lambda i: auc(poor[i], positive[i]), lambda i: auc(good[i], positive[i]),
                                positive, resamples=1000)
    assert reverse.estimate == pytest.approx(-result.estimate) and reverse.high < 0


def test_two_sided_p():
    assert two_sided_p(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(0.5)
    assert two_sided_p(np.array([1.0, 2.0, np.nan])) == 0.0
    assert two_sided_p(np.zeros(5)) == 1.0
