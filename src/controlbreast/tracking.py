"""The one place that opens MLflow runs.

Every stage logs to the same SQLite store (``<paths.mlruns>/mlflow.db``) with artifacts under
``<paths.mlruns>/artifacts``, so ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` from
the repository root shows all of them. When the environment variable ``MLFLOW_TRACKING_URI`` is set
(a shared ``mlflow server``, see ``controlbreast tracking-server``), it wins: runs, models and the
registry go there, with no change to params or code. Runs are tagged with the stage, the git commit and
whether the tree had uncommitted changes (``git_dirty``), and with the ``host`` and ``pid`` that ran
them, so that a run whose process was killed can be closed as ``KILLED`` by the next stage.
The experiment is marked as model training (``mlflow.experimentKind``), so MLflow 3's UI treats it
as runs, not GenAI traces; each run logs the prepared manifest it read as its input data set (digest
and split counts: the runs table's Dataset column); artifact progress bars are off unless
``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` says otherwise.
Creating or migrating the store is serialised by a file lock beside it (two stages started at once
would otherwise race in alembic). Params never carry secrets, salts or absolute paths.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controlbreast.config import Config

# MLflow 3's experiment kinds (mlflow.experimentKind): this project trains models, it has no traces
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
QUIET_ARTIFACTS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# MLflow 3.17's UI picks an experiment's view from its GenAI / Model training switch (kept per
# browser, GenAI at first), not from the kind: links into the UI carry the switch's value
UI_MODEL_TRAINING = "workflowType=machine_learning"


def tracking_uri(mlruns: Path) -> str:
    """SQLite URI of the store under ``mlruns`` (absolute, so any working directory works)."""
    return f"sqlite:///{(Path(mlruns).resolve() / 'mlflow.db').as_posix()}"


def configured_uri(mlruns: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a team's shared server), else the local store's URI."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or tracking_uri(mlruns)


def point_mlflow(uri: str) -> None:
    """``mlflow.set_tracking_uri(uri)`` without its side effect on the environment: MLflow exports
    the URI as ``MLFLOW_TRACKING_URI`` for child processes, which would make the next store this
    process (or a child, such as ``dvc repro``) opens look like a user's choice of server."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def git_commit() -> str | None:
    """The checked-out commit, or None outside a git repository."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the checked-out commit (``dvc.lock``, which DVC rewrites
    between stages, aside), or None outside a git repository. A run from a dirty tree cannot be
    reproduced from its ``git_commit`` alone."""
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)dvc.lock"], capture_output=True, text=True, check=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(result.stdout.strip())


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"image_size": 64}}`` → ``{"data.image_size": 64}`` (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def safe_key(key: str) -> str:
    """``key`` with the characters MLflow refuses in names (``+``, ``@``, ...) made ``_``."""
    return re.sub(r"[^\w./ -]", "_", key)


def metric_numbers(report: Mapping[str, Any]) -> dict[str, float]:
    """A nested report's numbers, flattened, with MLflow-safe keys (strings and flags left out)."""
    return {safe_key(key): float(value) for key, value in flatten(report).items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


SECRET_WORDS = ("secret", "salt", "password", "token")


def repository_root() -> Path:
    """The git work tree's root, else the working directory (what relative params refer to)."""
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                                check=True, timeout=10)
        return Path(result.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return Path.cwd()


def portable_value(value: Any, root: Path) -> Any:
    """An absolute path as it may be logged: relative to ``root`` when inside it, else its file name
    and a short hash of the full path (which tells two files apart without naming the folders).
    Lists and mappings (``evaluate.external``'s entries, each with its ``root`` and ``manifest``)
    are walked, so a path inside them is logged the same way; their secret keys are left out."""
    if isinstance(value, list):
        return [portable_value(item, root) for item in value]
    if isinstance(value, Mapping):
        return {key: portable_value(item, root) for key, item in value.items() if not secret(key)}
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path = Path(value)
    if path.is_relative_to(root):
        return path.relative_to(root).as_posix() or "."
    return f"{path.name}#{hashlib.sha256(value.encode()).hexdigest()[:8]}"


def loggable_params(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """Flat params without keys that name a secret or a salt, absolute paths made portable, keys
    MLflow-safe (a recipe named ``real+filtered``): MLflow params are shown to everyone who reads
    the store and copied wherever it goes."""
    return {safe_key(key): portable_value(value, root) for key, value in flatten(params).items()
            if not secret(key)}


def secret(key: str) -> bool:
    """Whether a param's name says it holds a secret or a salt (never logged)."""
    return any(word in key.lower() for word in SECRET_WORDS)


def use_store(config: Config) -> str:
    """Point MLflow at the project's store (or ``MLFLOW_TRACKING_URI``) and experiment; returns the
    experiment id.

    The first use of a SQLite store creates and migrates it; a file lock beside it makes a second
    process wait instead of failing in alembic (or creating the experiment twice). A server
    serialises its own writes and chooses where artifacts go.
    """
    import mlflow
    from filelock import FileLock

    os.environ.setdefault(QUIET_ARTIFACTS, "false")  # a bar per model file download otherwise
    mlruns = Path(config.paths.mlruns)
    uri = configured_uri(mlruns)
    point_mlflow(uri)
    if uri != tracking_uri(mlruns):  # a server or another store: it places the artifacts
        ensure_experiment(config.tracking.experiment, None)
    else:
        mlruns.mkdir(parents=True, exist_ok=True)
        with FileLock(mlruns / "mlflow.db.lock", timeout=300):
            ensure_experiment(config.tracking.experiment, (mlruns.resolve() / "artifacts").as_uri())
    # the active experiment: nested runs (started without an id) would go to "Default" otherwise
    return mlflow.set_experiment(config.tracking.experiment).experiment_id


def ensure_experiment(name: str, artifact_location: str | None) -> None:
    """Create the experiment ``name`` unless it exists (``None``: the store's default location),
    marked as model development; an older experiment without a kind gets it (a kind someone chose
    is kept)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        mlflow.create_experiment(name, artifact_location=artifact_location,
                                 tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    elif EXPERIMENT_KIND_TAG not in experiment.tags:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                                 EXPERIMENT_KIND)


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark ``RUNNING`` runs of this host whose process is gone as ``KILLED`` (with their nested
    runs); a killed process cannot end its run, which would otherwise stay running forever.
    Returns the ids of the runs closed."""
    from mlflow import MlflowClient

    client = MlflowClient()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    host = socket.gethostname()
    dead = {run.info.run_id for run in running if run.data.tags.get("host") == host
            and run.data.tags.get("pid", "").isdigit() and not process_alive(int(run.data.tags["pid"]))}
    while children := {run.info.run_id for run in running
                       if run.data.tags.get("mlflow.parentRunId") in dead} - dead:
        dead |= children  # nested runs (arm, then seed) die with their stage's process
    now = int(time.time() * 1000)
    for run_id in sorted(dead):
        client.set_terminated(run_id, status="KILLED", end_time=now)
    return sorted(dead)


@contextmanager
def stage_run(config: Config, stage: str, sections: tuple[str, ...]) -> Iterator[Any]:
    """An MLflow run for one stage, with the params of the ``sections`` it reads logged flat."""
    import mlflow

    experiment_id = use_store(config)
    closed = close_dead_runs(experiment_id)
    if closed:
        print(f"tracking: marked {len(closed)} run(s) of killed processes as KILLED: {', '.join(closed)}",
              file=sys.stderr)
    tags = {"stage": stage, "host": socket.gethostname(), "pid": str(os.getpid())}
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["git_dirty"] = str(git_dirty()).lower()
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=tags) as run:
        dumped = config.model_dump(mode="json")
        mlflow.log_params(loggable_params({key: dumped[key] for key in sections}, repository_root()))
        yield run
        log_prepared_data(Path(config.paths.prepared), data_context(stage))


def data_context(stage: str) -> str:
    """What a stage did with the prepared data, as MLflow's input context: ``training`` for the
    training and tuning stages, ``evaluation`` for the evaluations, else the stage's name."""
    if stage.startswith(("train", "tune")):
        return "training"
    return "evaluation" if stage.startswith("evaluate") else stage


def log_prepared_data(prepared: Path, context: str) -> None:
    """Log ``<prepared>/manifest.csv`` as the active run's input data set, when it exists (after
    ingest: logged at the end of the run, so ingest logs what it wrote). Its digest is the manifest's
    bytes' (which images, labels, groups and splits); the input's tags count images per split.
    The source is the path as logged params give it (relative to the repository)."""
    import mlflow.data
    import pandas as pd

    manifest = prepared / "manifest.csv"
    if not manifest.is_file():
        return
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    source = portable_value(str(manifest.resolve()), repository_root())
    with warnings.catch_warnings():  # MLflow registers its local source twice ("" and file:)
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple")
        dataset = mlflow.data.from_pandas(frame, source=source, name=prepared.name, digest=digest)
    counts = sorted(frame["split"].value_counts().items())
    mlflow.log_input(dataset, context=context, tags={f"split.{split}": str(n) for split, n in counts})


class StepMetrics:
    """Per-step metrics of the active run, buffered and sent in batches.

    One SQLite write per metric per step would cost more than a small model's training step; the
    buffer keeps every step's value and writes them ``every`` steps with ``log_batch``.
    """

    def __init__(self, every: int = 25):
        import mlflow

        self.run_id = mlflow.active_run().info.run_id if mlflow.active_run() else None
        self.every, self.buffer, self.pending_steps = every, [], 0

    def log(self, values: Mapping[str, float], step: int) -> None:
        """Buffer ``values`` at ``step``; flush every ``every`` calls."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.buffer.extend(Metric(key, float(value), stamp, step) for key, value in values.items())
        self.pending_steps += 1
        if self.pending_steps >= self.every:
            self.flush()

    def flush(self) -> None:
        """Send what is buffered (nothing happens outside an MLflow run)."""
        from mlflow import MlflowClient

        if self.run_id and self.buffer:
            for start in range(0, len(self.buffer), 1000):
                MlflowClient().log_batch(self.run_id, metrics=self.buffer[start:start + 1000])
        self.buffer, self.pending_steps = [], 0
