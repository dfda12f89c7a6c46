"""The Optuna machinery on real storages (SQLite, and PostgreSQL where a server is given, see the
``postgres_url`` fixture) with cheap objectives: workers sharing a study, the gRPC proxy, a killed
worker's trial, the pruner, and the errors of a bad setup."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from controlbreast.errors import ConfigError, ControlBreastError
from controlbreast.tuning.study import (
    check_finished,
    open_storage,
    open_study,
    optimize,
    run_workers,
)
from tuning_builders import STEPS, cheap_worker, scripted, tune_config, wait_for

FAST = {"heartbeat_interval": 1, "grace_period": 2}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna' / 'tune.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path) -> str:
    """The study's URL on each kind of RDB storage that workers share."""
    return sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url, tune_config(**FAST)))


def assert_recorded_once(study: optuna.Study, n_trials: int, workers: int, overshoot: int = 0) -> None:
    """Every trial recorded once, ``n_trials`` of them (the quota) plus at most ``overshoot``."""
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # none lost, none twice
    assert n_trials <= len(trials) <= n_trials + overshoot
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert len({t.user_attrs["pid"] for t in trials}) == workers  # every worker ran trials


def create(url: str, name: str, **tune) -> None:
    """The study made before workers start, as ``run_tune`` does (two workers creating the same
    tables at once would race)."""
    config = tune_config(**FAST, **tune)
    open_study(config, open_storage(url, config), name, STEPS)


def test_two_worker_processes_complete_exactly_n_trials_of_one_study(storage_url):
    create(storage_url, "shared")
    run_workers(cheap_worker, (storage_url, "shared", 10, FAST), workers=2)
    assert_recorded_once(load(storage_url, "shared"), 10, workers=2)


def points(study: optuna.Study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.get_trials()]


def test_two_workers_never_ask_for_the_same_point(tmp_path):
    """The same seed in both workers drew the same sequence: trials 0 and 1 asked for one point."""
    url = sqlite_url(tmp_path)
    create(url, "distinct")
    run_workers(cheap_worker, (url, "distinct", 6, FAST), workers=2)
    asked = points(load(url, "distinct"))
    assert len(asked) == 6 and len(set(asked)) == 6


def test_a_lost_worker_is_named_and_the_study_still_finishes(tmp_path):
    url = sqlite_url(tmp_path)
    create(url, "preempted")
    lost = run_workers(cheap_worker, (url, "preempted", 4, FAST, "die_first"), workers=2)
    assert len(lost) == 1 and re.fullmatch(r"tune-worker-[01] \(exit code -9\)", lost[0])
    study = load(url, "preempted")
    check_finished(study, 4, lost)  # the other worker finished the study: no error
    states = [t.state for t in study.get_trials()]
    assert states[0] == TrialState.FAIL and states[1:] == [TrialState.COMPLETE] * 4


def test_workers_lost_before_the_study_finishes_are_an_error_naming_them(tmp_path):
    url = sqlite_url(tmp_path)
    create(url, "lost")
    lost = run_workers(cheap_worker, (url, "lost", 4, FAST, "die"), workers=2)
    assert sorted(lost) == ["tune-worker-0 (exit code -9)", "tune-worker-1 (exit code -9)"]
    with pytest.raises(ControlBreastError, match=r"tune: the study holds 0 of 4 finished trials: "
                                                 r"workers tune-worker-0 \(exit code -9\), tune-worker-1"):
        check_finished(load(url, "lost"), 4, lost)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_workers_through_the_grpc_proxy(tmp_path):
    url, port = sqlite_url(tmp_path), free_port()
    server = subprocess.Popen([sys.executable, "-m", "controlbreast", "tune-server", "--storage", url,
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        proxy = f"grpc://127.0.0.1:{port}"
        open_storage(proxy, tune_config(), timeout=60)  # waits until the server answers
        run_workers(cheap_worker, (proxy, "proxied", 8, FAST), workers=2)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert f"serving {url} on grpc://127.0.0.1:{port}" in output
    # the RDB behind the proxy has them; no quota through the proxy: one overshoot per other worker
    assert_recorded_once(load(url, "proxied"), 8, workers=2, overshoot=1)


def test_a_killed_workers_trial_fails_after_the_grace_period_and_the_other_worker_goes_on(storage_url):
    import multiprocessing

    url, tune, context = storage_url, {**FAST, "retry_failed": 1}, multiprocessing.get_context("spawn")
    create(url, "killed", retry_failed=1)
    doomed = context.Process(target=cheap_worker, args=(url, "killed", 4, tune, "hang_first"))
    doomed.start()
    # params set: the objective runs, so the heartbeat thread has beaten (a trial killed before its
    # first heartbeat has none to go stale, an Optuna limitation)
    wait_for(lambda: any(t.state == TrialState.RUNNING and t.params
                         for t in load(url, "killed").get_trials()),
             timeout=60, what="trial 0 running its objective")
    survivor = context.Process(target=cheap_worker, args=(url, "killed", 4, tune))
    survivor.start()  # runs trials 1-3, then waits: trial 0 still holds the last place of 4
    wait_for(lambda: sum(t.state == TrialState.COMPLETE for t in load(url, "killed").get_trials()) == 3,
             timeout=60, what="three trials completed beside the hanging one")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    survivor.join(timeout=60)  # trial 0 goes stale after the grace period; the survivor reruns it
    assert survivor.exitcode == 0
    trials = load(url, "killed").get_trials()
    assert trials[0].state == TrialState.FAIL
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 4  # exactly the quota finished
    retried = [t for t in trials[1:] if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 0]
    assert len(retried) == 1 and retried[0].params == trials[0].params  # the same point, run again
    assert {t.user_attrs["pid"] for t in trials[1:]} == {survivor.pid}


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_the_pruner_prunes_a_scripted_bad_trial(tmp_path, pruner):
    tune = tune_config(pruner=pruner, sampler_seed=1, n_trials=5)
    good = [0.6, 0.7, 0.8, 0.85, 0.9, 0.9]
    curves = [good, good, good, [0.3, 0.2, 0.1, 0.1, 0.1, 0.1], good]
    study = open_study(tune, open_storage(sqlite_url(tmp_path), tune), "pruning", STEPS)
    optimize(study, scripted(curves), n_trials=5)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED, TrialState.COMPLETE]
    assert max(study.get_trials()[3].intermediate_values) < STEPS  # stopped before its last epoch


def test_an_unopenable_storage_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"tune\.storage: cannot open 'nosuchdialect://x'"):
        open_storage("nosuchdialect://x", tune_config())
    with pytest.raises(ConfigError, match=r"tune\.storage: cannot open 'grpc://127\.0\.0\.1:"):
        open_storage(f"grpc://127.0.0.1:{free_port()}", tune_config(), timeout=1)


def test_a_same_named_study_with_other_dimensions_is_refused(tmp_path):
    url = sqlite_url(tmp_path)
    first = tune_config()
    open_study(first, open_storage(url, first), "s", STEPS)
    open_study(first, open_storage(url, first), "s", STEPS)  # the same space joins
    other = tune_config(mix_ratio={"low": 0.1, "high": 0.5})
    with pytest.raises(ConfigError, match=r"tune\.study_name: study 's' .* created with dimensions"):
        open_study(other, open_storage(url, other), "s", STEPS)


def test_a_quota_smaller_than_the_asked_trials_is_an_error_not_a_wait(tmp_path):
    tune = tune_config(n_trials=2)
    study = open_study(tune, open_storage(sqlite_url(tmp_path), tune), "small", STEPS)
    with pytest.raises(ConfigError, match=r"tune\.n_trials: asked for 3 finished trials, but study"):
        optimize(study, scripted([[0.5]] * 3), n_trials=3)
    assert len(study.get_trials()) == 2  # the two the quota admits ran
