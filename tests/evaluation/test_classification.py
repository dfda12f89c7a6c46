"""The vectorised metrics against scikit-learn, hand-worked values and DeLong by definition."""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve

from controlbreast.classify.scores import auc, macro_auc
from controlbreast.evaluation.bootstrap import resample_indices
from controlbreast.evaluation.classification import (
    balanced_accuracy,
    confusion_rates,
    expected_calibration_error,
    reliability,
    sensitivity_specificity,
    youden_threshold,
)


def three_class(n: int, seed: int, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) softmax probabilities that carry some signal about (n,) labels, rounded to make ties."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + signal * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return np.round(probs, 2), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties_and_batches(seed):
    probs, labels = three_class(60, seed)
    positive = labels == 2
    assert auc(probs[:, 2], positive) == pytest.approx(roc_auc_score(positive, probs[:, 2]), abs=1e-12)
    index = resample_indices(labels, 5, seed)
    batched = auc(probs[index, 2], positive[index])
    expected = [roc_auc_score(positive[row], probs[row, 2]) for row in index]
    np.testing.assert_allclose(batched, expected, atol=1e-12)


def test_auc_is_nan_when_a_class_is_absent():
    assert np.isnan(auc(np.array([0.1, 0.4]), np.array([True, True])))


@pytest.mark.parametrize("seed", [0, 1])
def test_macro_auc_matches_sklearn_one_vs_rest(seed):
    probs, labels = three_class(80, seed)
    probs = probs / probs.sum(1, keepdims=True)  # sklearn insists on rows summing to 1
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert macro_auc(probs, labels) == pytest.approx(expected, abs=1e-12)


def test_balanced_accuracy_and_confusion_match_sklearn():
    probs, labels = three_class(90, 3, signal=0.5)
    predicted = probs.argmax(1)
    expected = balanced_accuracy_score(labels, predicted)
    assert balanced_accuracy(predicted, labels, 3) == pytest.approx(expected)
    np.testing.assert_allclose(confusion_rates(predicted, labels, 3),
                               confusion_matrix(labels, predicted, normalize="true"), atol=1e-12)


def test_sensitivity_specificity_and_youden_threshold():
    probs, labels = three_class(120, 4)
    scores, positive = probs[:, 2], labels == 2
    threshold = youden_threshold(scores, positive)
    sensitivity, specificity = sensitivity_specificity(scores, positive, threshold)
    matrix = confusion_matrix(positive, scores >= threshold)
    assert sensitivity == pytest.approx(matrix[1, 1] / matrix[1].sum())
    assert specificity == pytest.approx(matrix[0, 0] / matrix[0].sum())
    fpr, tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    assert sensitivity + specificity - 1 == pytest.approx(np.max(tpr - fpr))
    candidates = [sum(sensitivity_specificity(scores, positive, t)) for t in np.unique(scores)]
    assert sensitivity + specificity == pytest.approx(max(candidates))


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 0])
    # confidences 0.9, 0.6, 0.7, 0.8; correct: yes, no, yes, no
    # two bins: all four in (0.5, 1]: accuracy 0.5, mean confidence 0.75 -> |0.5 - 0.75| = 0.25
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(0.25)
    # ten bins: one case per bin -> (0.1 + 0.6 + 0.3 + 0.8) / 4
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.45)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def test_reliability_matches_sklearn_calibration_curve():
    probs, labels = three_class(200, 5)
    scores, positive = probs[:, 1], labels == 1
    observed, predicted = calibration_curve(positive, scores, n_bins=10, strategy="uniform")
    curve = reliability(scores, positive, bins=10)
    np.testing.assert_allclose(curve["observed"], observed, atol=1e-12)
    np.testing.assert_allclose(curve["predicted"], predicted, atol=1e-12)
    assert curve["count"].sum() == len(scores)
