"""Classification metrics, vectorised over leading batch axes so bootstrap resamples cost little.

Shapes: ``scores`` (..., n) and ``positive`` (..., n) bool for the binary view (one class against
the rest); ``probabilities`` (..., n, C) and ``labels`` (..., n) int for the multi-class view. A
leading axis is typically the B bootstrap resamples; the plain (n,) form works the same way. Each
function agrees with scikit-learn's on the same inputs (see tests/evaluation).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def confusion_rates(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(..., C, C) confusion matrix, rows = true class normalised to 1 (NaN row if absent)."""
    true = labels[..., :, None] == np.arange(classes)
    guess = predicted[..., :, None] == np.arange(classes)
    counts = np.einsum("...ni,...nj->...ij", true.astype(float), guess.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(axis=-1, keepdims=True)


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Mean recall over the classes present (scikit-learn's ``balanced_accuracy_score``)."""
    recalls = np.diagonal(confusion_rates(predicted, labels, classes), axis1=-2, axis2=-1)
    return np.nanmean(recalls, axis=-1)


def sensitivity_specificity(scores: np.ndarray, positive: np.ndarray,
                            threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """True-positive and true-negative rates when ``scores >= threshold`` is called positive."""
    positive = np.asarray(positive, dtype=bool)
    called = np.asarray(scores) >= threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (called & positive).sum(-1) / positive.sum(-1)
        specificity = (~called & ~positive).sum(-1) / (~positive).sum(-1)
    return sensitivity, specificity


def youden_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The operating point maximising sensitivity + specificity - 1 (Youden's J) on (n,) cases.

    Chosen on the validation split only; ties keep the highest threshold (fewest positives).
    """
    fpr, tpr, thresholds = roc_curve(positive, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def _bin_of(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each value in [0, 1], right edges closed (as ``calibration_curve``)."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], values)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 10) -> np.ndarray:
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    confidence = probabilities.max(axis=-1)
    correct = (probabilities.argmax(axis=-1) == labels).astype(float)
    member = _bin_of(confidence, bins)[..., None] == np.arange(bins)
    gap = np.einsum("...nb,...n->...b", member.astype(float), correct - confidence)
    return np.abs(gap).sum(axis=-1) / labels.shape[-1]


def reliability(scores: np.ndarray, positive: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Calibration curve of (n,) binary scores: per non-empty bin, mean score, positive fraction."""
    which = _bin_of(np.asarray(scores), bins)
    count = np.bincount(which, minlength=bins)
    mean = np.bincount(which, weights=scores, minlength=bins)
    hits = np.bincount(which, weights=np.asarray(positive, float), minlength=bins)
    kept = count > 0
    return {"predicted": mean[kept] / count[kept], "observed": hits[kept] / count[kept],
            "count": count[kept]}
