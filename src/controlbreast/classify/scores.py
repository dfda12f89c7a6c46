"""ROC AUC, one-vs-rest and macro: what model selection (validation) and evaluation (test) both score.

Vectorised over leading axes: ``scores`` (..., n), ``positive`` (..., n) bool; ``probabilities``
(..., n, C), ``labels`` (..., n) int. A leading axis is typically B bootstrap resamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties count half): (..., n) → (...); NaN when a class is absent."""
    positive = np.asarray(positive, dtype=bool)
    ranks = rankdata(scores, axis=-1)
    n_pos = positive.sum(axis=-1)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def macro_auc(probabilities: np.ndarray, labels: np.ndarray,
              classes: Sequence[int] | None = None) -> np.ndarray:
    """One-vs-rest AUC averaged over ``classes`` (default: all C; unweighted, as scikit-learn's
    ``ovr``/``macro``). NaN when one of them is absent from ``labels``."""
    chosen = range(probabilities.shape[-1]) if classes is None else classes
    return np.mean([auc(probabilities[..., c], labels == c) for c in chosen], axis=0)


def macro_auc_interval(probabilities: np.ndarray, labels: np.ndarray, resamples: int = 1000,
                       seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the macro AUC over class-stratified bootstrap resamples of the cases.

    ``probabilities`` (n, C), ``labels`` (n,). Model selection uses it to tell a classifier from
    chance: a validation AUC of 0.57 on 50 images is not evidence of skill.
    """
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(members, size=(resamples, len(members)))
                            for members in (np.flatnonzero(labels == c) for c in np.unique(labels))], axis=1)
    values = macro_auc(probabilities[index], labels[index])
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)
