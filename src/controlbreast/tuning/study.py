"""The study: its storage, sampler and pruner, the dimension check, workers and the summary.

Workers are processes running ``study.optimize`` on one shared storage (Optuna's own scale-out):
an RDB storage (any SQLAlchemy URL) with heartbeats, so a worker that dies mid-trial leaves that
trial FAILED after ``tune.grace_period`` s and the others go on; or ``grpc://HOST:PORT``, a
``controlbreast tune-server`` in front of an RDB storage (no heartbeats through the proxy).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from controlbreast.credentials import database_password, refuse_password, sqlalchemy_url
from controlbreast.errors import ConfigError, ControlBreastError
from controlbreast.tuning.config import TuneConfig

DIMENSIONS_ATTR = "dimensions"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
QUOTA_STATES = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
QUOTA_POLL_SECONDS = 0.5
LOCK_CLASS = 0x0C0B7E  # the advisory lock's first key (this project's trial creation); the second: the study


def dimension_spec(tune: TuneConfig) -> dict[str, dict]:
    """The searched space as JSON, stored on the study so a changed space cannot join it."""
    return {name: dimension.model_dump(mode="json") for name, dimension in tune.dimensions().items()}


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file (``sqlite:///optuna/tune.db``) so the first run works."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


class StudyFullError(Exception):
    """The study holds its quota of finished, running and queued trials: no new one is created."""


class QuotaStorage(RDBStorage):
    """An RDB storage that creates a trial only while the study holds fewer than ``quota`` finished,
    running or queued ones, counted and created under a lock that every worker shares (PostgreSQL:
    an advisory lock, held by the server; SQLite: a lock file beside the database), so workers
    started together finish exactly ``quota`` trials instead of one extra each. Trials of failed
    runs do not count: a killed worker's trial, once FAILED by heartbeat, is replaced."""

    def __init__(self, url: str, quota: int, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.quota = quota

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        with self._creation_lock(study_id):
            held = len(self.get_all_trials(study_id, deepcopy=False, states=QUOTA_STATES))
            if template_trial is None and held >= self.quota:
                raise StudyFullError(f"study {study_id} holds {held} finished, running or queued trials")
            return super()._create_new_trial(study_id, template_trial)

    @contextlib.contextmanager
    def _creation_lock(self, study_id: int) -> Iterator[None]:
        url = self.engine.url
        if url.get_backend_name() == "postgresql":
            with self.engine.connect() as connection:  # a session lock: freed if this process dies
                key = {"a": LOCK_CLASS, "b": study_id}
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, :b)"), key)
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, :b)"), key)
        elif url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            with FileLock(f"{url.database}.trials.lock"):
                yield
        else:  # another server database, or one process: the quota is checked without a lock
            yield


def rdb_storage(url: str, key: str, quota: int | None = None, **heartbeats: Any) -> RDBStorage:
    """Optuna's RDB storage on ``url`` (SQLite: its folder made; PostgreSQL: psycopg 3, the password
    from the environment, see ``controlbreast.credentials``), a ``QuotaStorage`` when ``quota`` is
    given; ``key`` names the URL's source in errors."""
    refuse_password(url, key)
    ensure_sqlite_folder(url)
    connect: dict[str, Any] = {"timeout": 60} if url.startswith("sqlite") else {}
    if password := database_password(url):
        connect["password"] = password
    kwargs = {"engine_kwargs": {"connect_args": connect}, **heartbeats}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.x; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if quota is None:
            return RDBStorage(sqlalchemy_url(url), **kwargs)
        return QuotaStorage(sqlalchemy_url(url), quota, **kwargs)


def check_storage_url(url: str) -> None:
    """A ``ConfigError`` naming ``tune.storage`` when its database kind (SQLAlchemy dialect) is
    unknown here: checked before anything else, without connecting or creating a file."""
    if url.startswith("grpc://"):
        return
    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except Exception as error:  # a malformed URL or a dialect no driver provides
        raise ConfigError(f"tune.storage: cannot open {url!r}: {type(error).__name__}: {error}") from None


def open_storage(url: str, tune: TuneConfig, timeout: float = 10.0) -> BaseStorage:
    """An RDB storage with heartbeats and the quota ``tune.n_trials`` (``QuotaStorage``), or a gRPC
    proxy client (no quota: workers behind the proxy may run one trial too many each); a storage
    that cannot be opened is a ``ConfigError`` naming ``tune.storage``."""
    try:
        if url.startswith("grpc://"):
            address = urlsplit(url)
            if not address.hostname or not address.port:
                raise ValueError("expected grpc://HOST:PORT")
            proxy = optuna.storages.GrpcStorageProxy(host=address.hostname, port=address.port)
            proxy.wait_server_ready(timeout=timeout)
            return proxy
        retry = RetryHeartbeatStaleTrialCallback(max_retry=tune.retry_failed) if tune.retry_failed else None
        return rdb_storage(url, "tune.storage", tune.n_trials or None,
                           heartbeat_interval=tune.heartbeat_interval, grace_period=tune.grace_period,
                           heartbeat_stale_trial_callback=retry)
    except ConfigError:
        raise
    except Exception as error:  # SQLAlchemy, driver, URL and connection errors alike
        raise ConfigError(f"tune.storage: cannot open {url!r}: {type(error).__name__}: {error}") from None


def make_pruner(tune: TuneConfig, steps: int) -> optuna.pruners.BasePruner:
    """Median (after 3 complete trials, from half the ``steps`` epochs on: early epochs' AUC is
    noise, and pruning saves only classifier epochs, the set being drawn already), Hyperband over
    ``steps`` epochs, or none."""
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, steps // 2))
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(steps, 2))
    return optuna.pruners.NopPruner()


def open_study(tune: TuneConfig, storage: BaseStorage, name: str, steps: int,
               worker: int = 0) -> optuna.Study:
    """Create or load study ``name`` as worker ``worker`` of a run; one created with other
    dimensions is a ``ConfigError``. Each worker's sampler is seeded ``tune.sampler_seed + worker``:
    one seed would draw one sequence in every worker, so workers started together would ask for the
    same points (TPE's constant liar keeps the later, model-guided trials apart)."""
    sampler = optuna.samplers.TPESampler(seed=tune.sampler_seed + worker, n_startup_trials=3,
                                         constant_liar=True)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=sampler, pruner=make_pruner(tune, steps), load_if_exists=True)
    spec = dimension_spec(tune)
    stored = study.user_attrs.get(DIMENSIONS_ATTR)
    if stored is None:
        study.set_user_attr(DIMENSIONS_ATTR, spec)
    elif stored != spec:
        raise ConfigError(f"tune.study_name: study {name!r} in the storage was created with dimensions "
                          f"{json.dumps(stored)}, these params search {json.dumps(spec)}; choose another "
                          "tune.study_name (or delete that study)")
    return study


def optimize(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
             callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (counted over every worker);
    this worker runs at most ``n_trials`` in a row so failing trials cannot loop forever. While the
    others' running trials fill the quota (``QuotaStorage``), wait: they finish, or their worker
    died and they turn FAILED after the grace period (checked before each trial), and this worker
    takes over."""
    done = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
    while finished(study) < n_trials:
        try:
            study.optimize(objective, n_trials=n_trials, callbacks=[*callbacks, done], gc_after_trial=True)
            return
        except StudyFullError as full:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
            if not running and finished(study) < n_trials:
                raise ConfigError(f"tune.n_trials: asked for {n_trials} finished trials, but {full} and "
                                  "none is left to finish (the storage's quota is smaller)") from full
            time.sleep(QUOTA_POLL_SECONDS)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_workers(target: Callable[..., Any], args: tuple, workers: int) -> list[str]:
    """Run ``target(*args, index=i)`` in ``workers`` fresh processes (spawn: no forked torch or
    SQLite state) and wait for all; returns the workers that ended with an error or a signal, as
    ``"tune-worker-0 (exit code -9)"``. A lost worker is not itself an error: its running trial
    turns FAILED by heartbeat and the others finish the study (``check_finished`` decides)."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args, kwargs={"index": i}, name=f"tune-worker-{i}")
                 for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return [f"{p.name} (exit code {p.exitcode})" for p in processes if p.exitcode != 0]


def check_finished(study: optuna.Study, n_trials: int, lost: Sequence[str]) -> None:
    """The run failed only when the study holds fewer than ``n_trials`` finished trials; then the
    error names the workers that were lost (a preempted worker of a study that finished is not)."""
    held = finished(study)
    if held < n_trials:
        raise ControlBreastError(f"tune: the study holds {held} of {n_trials} finished trials: workers "
                                 f"{', '.join(lost) or 'none'} ended early (see their output above); run "
                                 "`controlbreast tune` again to add the missing trials")


def summarise(study: optuna.Study, seconds: float) -> dict:
    """``metrics/tune.json``: best params and validation AUC, trial counts, trials per minute."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"study": study.study_name, "best_params": best.params if best else {},
            "best_val_auc": best.value if best else None, "best_trial": best.number if best else None,
            "trials": counts, "seconds": seconds,
            "trials_per_minute": (counts["complete"] + counts["pruned"]) / max(seconds, 1e-9) * 60,
            "note": "best_val_auc is the validation AUC of the best of many trials: optimistic "
                    "(winner's curse); evaluate's test-split AUC is the honest number"}
