"""Cheap objectives and worker entry points for the Optuna-machinery tests (importable by spawned
worker processes: ``tests/`` is on their ``sys.path`` as on pytest's)."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable

import optuna

from controlbreast.config import parse_config
from controlbreast.tuning.config import TuneConfig
from controlbreast.tuning.search import reporter, suggest
from controlbreast.tuning.study import open_storage, open_study, optimize

STEPS = 6


def tune_config(**values) -> TuneConfig:
    return parse_config({"tune": values}).tune


def quick(trial: optuna.Trial, values: dict[str, float] | None = None) -> float:
    """A smooth function of the real search space (peak at guidance 2, mix 0.1), 0.2 s a trial (so
    that each of two workers started together gets trials)."""
    values = values or suggest(trial, parse_config({}))
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.2)
    return 1.0 - (values["guidance_scale"] - 2.0) ** 2 / 10 - math.log(values["mix_ratio"] / 0.1) ** 2 / 10


def hang_first(trial: optuna.Trial) -> float:
    """Trial 0 takes its point, then never ends (its worker is to be killed); the others are ``quick``."""
    values = suggest(trial, parse_config({}))
    if trial.number == 0:
        time.sleep(600)
    return quick(trial, values)


def die_first(trial: optuna.Trial) -> float:
    """Trial 0 takes its point, then its worker is killed (SIGKILL, as a preempted machine's); the
    others are ``quick``."""
    values = suggest(trial, parse_config({}))
    if trial.number == 0:
        time.sleep(0.5)  # a heartbeat first: a trial killed before its first one never goes stale
        os.kill(os.getpid(), signal.SIGKILL)
    return quick(trial, values)


def die(trial: optuna.Trial) -> float:
    """Every worker killed in its first trial: no study can finish."""
    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


OBJECTIVES = {"quick": quick, "hang_first": hang_first, "die_first": die_first, "die": die}


def cheap_worker(url: str, name: str, n_trials: int, tune: dict, objective: str = "quick",
                 index: int = 0) -> None:
    """What ``tuning.run.worker`` does, with a cheap objective: join the study as worker ``index``,
    run trials."""
    config = tune_config(**tune, n_trials=n_trials)
    study = open_study(config, open_storage(url, config), name, STEPS, worker=index)
    optimize(study, OBJECTIVES[objective], n_trials)


def scripted(curves: list[list[float]]):
    """An objective reporting ``curves[trial.number]`` epoch by epoch through the real reporter."""

    def objective(trial: optuna.Trial) -> float:
        report = reporter(trial, 0)
        for epoch, value in enumerate(curves[trial.number], start=1):
            report(epoch, {"val_auc": value})
        return max(curves[trial.number])

    return objective


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.1)
