"""Bootstrap intervals and paired differences for any statistic of a set of test cases.

A statistic is a function of an index array: given ``index`` of shape (B, n) (B resamples of the n
cases), it returns (B,) or (B, ...) values, one per resample. Writing statistics this way lets them
compute all resamples at once with vectorised numpy (the default 1000 resamples of a few hundred
cases take milliseconds), and lets two statistics share the very same resamples, which is what
makes a difference between two models on the same cases *paired*.

Resampling is stratified by label: each resample keeps each class's count, so a class-wise metric
(AUC, sensitivity) is defined in every resample, and the interval reflects sampling within classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A point estimate on all cases and its percentile interval; arrays for vector statistics.

    ``p_value`` is set only for differences: the two-sided bootstrap p-value of "no difference".
    """

    estimate: float | list
    low: float | list
    high: float | list
    p_value: float | None = None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


def resample_indices(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement within each class of ``labels`` (n,)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    index = np.empty((resamples, len(labels)), dtype=np.int64)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        index[:, members] = rng.choice(members, size=(resamples, len(members)), replace=True)
    return index


def _estimate_and_samples(statistic: Statistic, labels: np.ndarray, resamples: int,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
    everything = np.arange(len(labels))[None, :]
    return np.asarray(statistic(everything))[0], np.asarray(statistic(
        resample_indices(labels, resamples, seed)))


def _interval(estimate: np.ndarray, samples: np.ndarray, confidence: float,
              p_value: float | None = None) -> Interval:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    as_out = (lambda a: a.tolist()) if np.ndim(estimate) else float
    return Interval(as_out(estimate), as_out(low), as_out(high), p_value)


def bootstrap_interval(statistic: Statistic, labels: np.ndarray, resamples: int = 1000,
                       seed: int = 0, confidence: float = 0.95) -> Interval:
    """The statistic on all cases with its percentile bootstrap interval."""
    estimate, samples = _estimate_and_samples(statistic, labels, resamples, seed)
    return _interval(estimate, samples, confidence)


def two_sided_p(differences: np.ndarray) -> float:
    """Bootstrap p-value of "the difference is zero": twice the smaller tail mass beyond zero."""
    differences = np.asarray(differences, dtype=float)
    differences = differences[np.isfinite(differences)]
    tail = min(np.mean(differences <= 0.0), np.mean(differences >= 0.0))
    return float(min(1.0, 2.0 * tail))


def paired_difference(statistic_a: Statistic, statistic_b: Statistic, labels: np.ndarray,
                      resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """``a - b`` on the same resamples of the same cases: estimate, interval and p-value."""
    def difference(index: np.ndarray) -> np.ndarray:
        return np.asarray(statistic_a(index)) - np.asarray(statistic_b(index))

    estimate, samples = _estimate_and_samples(difference, labels, resamples, seed)
    return _interval(estimate, samples, confidence, two_sided_p(samples))


def format_interval(value: dict, signed: bool = False) -> str:
    """``estimate [low, high]`` (signed for a difference, with its p-value), or n/a."""
    if any(value.get(key) is None for key in ("estimate", "low", "high")):
        return "n/a"
    form = "{:+.3f}" if signed else "{:.3f}"
    text = f"{form.format(value['estimate'])} [{value['low']:.3f}, {value['high']:.3f}]"
    return text + (f" p={value['p_value']:.3f}" if "p_value" in value else "")
