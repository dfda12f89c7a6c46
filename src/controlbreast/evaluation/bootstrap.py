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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import t as student_t

Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A point estimate on all cases and its percentile interval; arrays for vector statistics."""

    estimate: float | list
    low: float | list
    high: float | list

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


def _interval(estimate: np.ndarray, samples: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    as_out = (lambda a: a.tolist()) if np.ndim(estimate) else float
    return Interval(as_out(estimate), as_out(low), as_out(high))


def bootstrap_interval(statistic: Statistic, labels: np.ndarray, resamples: int = 1000,
                       seed: int = 0, confidence: float = 0.95) -> Interval:
    """The statistic on all cases with its percentile bootstrap interval."""
    estimate, samples = _estimate_and_samples(statistic, labels, resamples, seed)
    return _interval(estimate, samples, confidence)


@dataclass(frozen=True)
class SeedInterval:
    """A statistic averaged over training seeds, with an interval that holds both the test images
    and the seeds as random (``seed_interval``).

    ``estimate``: the mean over the S seeds of the statistic on every test image; ``seed_sd``: the
    between-seed standard deviation of that statistic (how far one training run moves it);
    ``p_value`` (differences only): the two-sided p of "no difference" from the same t procedure,
    None where the spread is exactly zero (two identical models: no test is defined).
    """

    estimate: float | None
    low: float | None
    high: float | None
    seed_sd: float | None
    seeds: int
    p_value: float | None = None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Resampled:
    """A statistic on all n test cases (``full``) and on B shared resamples of them (``samples``
    (B,)). Computed once per model and metric, it serves the model's own interval, its arm's mean
    over seeds and every paired difference it enters (``a - b`` pairs the same resamples)."""

    full: float
    samples: np.ndarray

    def __sub__(self, other: Resampled) -> Resampled:
        return Resampled(self.full - other.full, self.samples - other.samples)


def resample(statistics: Mapping[str, Statistic], labels: np.ndarray, resamples: int = 1000,
             seed: int = 0) -> dict[str, Resampled]:
    """Each scalar statistic on all cases and on the class-stratified resamples of ``labels``
    (``resample_indices``: the same for every model scored on these cases with this seed)."""
    everything = np.arange(len(labels))[None, :]
    index = resample_indices(labels, resamples, seed)
    return {name: Resampled(float(np.asarray(statistic(everything))[0]),
                            np.asarray(statistic(index), dtype=float))
            for name, statistic in statistics.items()}


def percentile_interval(value: Resampled, confidence: float = 0.95) -> Interval:
    """One model's ``value`` with its percentile bootstrap interval (as ``bootstrap_interval``)."""
    return _interval(np.float64(value.full), value.samples, confidence)


def seed_images_interval(per_seed: Sequence[Statistic], labels: np.ndarray, resamples: int = 1000,
                         seed: int = 0, confidence: float = 0.95, difference: bool = False,
                         bounds: tuple[float, float] = (-np.inf, np.inf)) -> SeedInterval:
    """The mean over S training seeds of a statistic (one function per seed, e.g. a paired
    difference of two arms trained with that seed) and its interval over seeds *and* test images
    (``seed_interval``, on the class-stratified resamples of ``labels``)."""
    values = [resample({"value": statistic}, labels, resamples, seed)["value"] for statistic in per_seed]
    return seed_interval(values, len(labels), confidence, difference, bounds)


def seed_interval(per_seed: Sequence[Resampled], cases: int, confidence: float = 0.95,
                  difference: bool = False, bounds: tuple[float, float] = (-np.inf, np.inf)) -> SeedInterval:
    """The mean over S seeds of a statistic resampled on the same ``cases`` test cases, and its
    interval over seeds *and* test images.

    The variance of the seed mean has two parts: the test images (the class-stratified bootstrap of
    the seed mean, every seed on the same resamples, ``v_images``) and the training runs (the
    between-seed variance of the S full-set values over S, ``v_seeds``). The interval is
    ``estimate ± t · sqrt(v_images + v_seeds)`` with Student's t at the Welch-Satterthwaite degrees
    of freedom (S − 1 for the seed part, n − 1 for the image part): with five seeds a percentile
    bootstrap over seeds would be too narrow (it underestimates their variance by (S − 1)/S and has
    normal tails). ``p_value`` (``difference``) comes from the same t. ``bounds`` clip the interval
    to the statistic's range (an AUC's [0, 1]). Undefined values (NaN) drop out of every mean.
    """
    full = np.array([value.full for value in per_seed])
    kept = np.isfinite(full)
    if not kept.any():
        return SeedInterval(None, None, None, None, len(per_seed))
    samples = np.stack([value.samples for value, keep in zip(per_seed, kept, strict=True) if keep])
    return _t_interval(full[kept], np.nanmean(samples, axis=0), cases, confidence, difference, bounds)


def _t_interval(full: np.ndarray, seed_means: np.ndarray, cases: int, confidence: float,
                difference: bool, bounds: tuple[float, float]) -> SeedInterval:
    """``seed_interval``'s interval from the (S,) full-set values and the (B,) resampled
    seed means."""
    count, estimate = len(full), float(full.mean())
    v_images = float(np.nanvar(seed_means, ddof=1)) if np.isfinite(seed_means).sum() > 1 else 0.0
    spread = float(full.std(ddof=1)) if count > 1 else 0.0
    v_seeds = spread**2 / count
    error = np.sqrt(v_images + v_seeds)
    if error == 0.0:
        return SeedInterval(estimate, estimate, estimate, spread, count)
    parts = (v_seeds**2 / (count - 1) if count > 1 else 0.0) + v_images**2 / max(cases - 1, 1)
    freedom = (v_images + v_seeds) ** 2 / parts
    half = float(student_t.ppf(0.5 + confidence / 2.0, freedom)) * error
    low, high = max(estimate - half, bounds[0]), min(estimate + half, bounds[1])
    p_value = float(2.0 * student_t.sf(abs(estimate) / error, freedom)) if difference else None
    return SeedInterval(estimate, float(low), float(high), spread, count, p_value)


def format_interval(value: dict, signed: bool = False) -> str:
    """``estimate [low, high]`` (signed for a difference, with its p-value), or n/a."""
    if any(value.get(key) is None for key in ("estimate", "low", "high")):
        return "n/a"
    form = "{:+.3f}" if signed else "{:.3f}"
    text = f"{form.format(value['estimate'])} [{value['low']:.3f}, {value['high']:.3f}]"
    return text + (f" p={value['p_value']:.3f}" if "p_value" in value else "")
