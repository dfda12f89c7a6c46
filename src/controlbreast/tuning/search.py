"""The search space and the pruning hook, light (Optuna and config only) so that a worker with a
cheap objective, as in the tests of the machinery, need not import torch."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna

from controlbreast.config import Config


def suggest(trial: optuna.Trial, config: Config) -> dict[str, float]:
    """The trial's value of each searched dimension (``tune.dimensions()``)."""
    values = {}
    for name, dimension in config.tune.dimensions().items():
        if name == "synthetic_count":
            values[name] = trial.suggest_int(name, math.ceil(dimension.low), math.floor(dimension.high),
                                             log=dimension.log, step=int(dimension.step or 1))
        else:
            values[name] = trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log,
                                               step=dimension.step)
    return values


def reporter(trial: optuna.Trial, offset: int) -> Callable[[int, dict[str, float]], None]:
    """An ``on_epoch`` callback: reports the best validation AUC so far at step ``offset + epoch``
    (seeds one after another, so trials compare at the same seed and epoch) and prunes when told."""
    best = -math.inf

    def report(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal best
        best = max(best, metrics["val_auc"])
        trial.report(best, offset + epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation AUC {best:.3f} at step {offset + epoch}")

    return report
