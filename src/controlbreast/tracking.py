"""The one place that opens MLflow runs.

Every stage logs to the same SQLite store (``<paths.mlruns>/mlflow.db``) with artifacts under
``<paths.mlruns>/artifacts``, so ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` from
the repository root shows all of them. When the environment variable ``MLFLOW_TRACKING_URI`` is set
(a shared ``mlflow server``, see ``controlbreast tracking-server``), it wins: runs, models and the
registry go there, with no change to params or code. Runs are tagged with the stage, the git commit
and whether the tree had uncommitted changes (``git_dirty``, the pipeline's own outputs aside), and
with the ``host`` and ``pid`` that ran them, so that a run whose process was killed can be closed as
``KILLED`` by the next stage.
The experiment is marked as model training (``mlflow.experimentKind``), so MLflow 3's UI treats it
as runs, not GenAI traces; each run logs the data sets it read or wrote as its inputs, with their
role (training, validation, test, synthetic, external) and DVC digest (the runs table's Dataset
column); a run is named as its DVC stage; artifact progress bars are off unless
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
from collections.abc import Iterator, Mapping, Sequence
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
# a run's input data sets, by what the run did with them (MLflow's input context)
SPLIT_ROLES = {"train": "training", "val": "validation", "test": "test"}  # the prepared splits
DATA_ROLES = (*SPLIT_ROLES.values(), "synthetic", "external")


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


def git_dirty(outputs: Sequence[str] = ()) -> bool | None:
    """Whether tracked files differ from the checked-out commit, the pipeline's own writes aside
    (``dvc.lock``, which DVC rewrites between stages, and ``outputs``: see ``pipeline_outputs``),
    or None outside a git repository. A run from a dirty tree cannot be reproduced from its
    ``git_commit`` alone; the pipeline rewriting its committed metrics does not make it so."""
    excluded = [f":(exclude){path}" for path in ("dvc.lock", *outputs)]
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 *excluded], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(result.stdout.strip())


def pipeline_outputs(config: Config) -> list[str]:
    """What the stages write, as paths relative to the repository: every ``paths.*`` folder inside
    it (metrics, reports, data, models, the MLflow store)."""
    root = repository_root().resolve()
    found = [Path(value).resolve() for value in config.paths.model_dump().values()]
    return sorted({path.relative_to(root).as_posix() for path in found if path.is_relative_to(root)})


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
def stage_run(config: Config, stage: str, sections: tuple[str, ...],
              data: Sequence[str] = ("training", "validation")) -> Iterator[Any]:
    """An MLflow run for one stage, named as its DVC stage (``stage`` outside DVC), with the params
    of the ``sections`` it reads logged flat and the data sets of the roles in ``data`` it reads or
    writes (``log_data_sets``; logged at the end, so a stage logs what it wrote)."""
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
        tags["git_dirty"] = str(git_dirty(pipeline_outputs(config))).lower()
    with mlflow.start_run(experiment_id=experiment_id, run_name=dvc_stage() or stage, tags=tags) as run:
        dumped = config.model_dump(mode="json")
        mlflow.log_params(loggable_params({key: dumped[key] for key in sections}, repository_root()))
        yield run
        log_data_sets(config, data)


def dvc_stage() -> str | None:
    """The DVC stage running this process (``DVC_STAGE``, which ``dvc repro`` sets: ``stage`` or
    ``path/dvc.yaml:stage``), as its bare name; None outside DVC."""
    found = os.environ.get("DVC_STAGE", "").strip()
    return found.rsplit(":", 1)[-1] or None


def lock_digests(root: Path) -> dict[str, tuple[str, str]]:
    """``{output path: (stage, md5)}`` of ``<root>/dvc.lock`` (a folder's md5 ends in ``.dir``);
    empty without a lock (or with one that is not DVC's)."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text()) if (root / "dvc.lock").is_file() else None
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    return {out["path"]: (name, out["md5"]) for name, stage in stages.items()
            for out in stage.get("outs", []) if "md5" in out}


def data_sets(config: Config, roles: Sequence[str]) -> list[tuple[Path, str | None, str]]:
    """``(folder, split or None, role)`` of each data set of ``roles`` (``DATA_ROLES``) that exists:
    the prepared splits, the synthetic set, each external set under ``paths.external``."""
    found = []
    for role in roles:
        if role not in DATA_ROLES:
            raise ValueError(f"data role {role!r}: one of {', '.join(DATA_ROLES)}")
        if role in SPLIT_ROLES.values():
            split = next(split for split, name in SPLIT_ROLES.items() if name == role)
            found.append((Path(config.paths.prepared), split, role))
        elif role == "synthetic":
            found.append((Path(config.paths.synthetic), None, role))
        elif Path(config.paths.external).is_dir():
            found.extend((folder, None, role) for folder in sorted(Path(config.paths.external).iterdir())
                         if (folder / "manifest.csv").is_file())
    return [(folder, split, role) for folder, split, role in found if (folder / "manifest.csv").is_file()]


def log_data_sets(config: Config, roles: Sequence[str]) -> None:
    """Log the data sets of ``roles`` (``data_sets``) as the active run's inputs, the role as the
    input's context. A data set's digest is DVC's (``dvc.lock``'s md5 of its folder, or of the
    output folder holding it, such as ``data/external``; ``.dir`` dropped) when another stage wrote
    it; one this stage writes (not locked yet) or one outside DVC gets its manifest's SHA-256 (16
    hex); the input's tags say which (``digest``) and count images per class. The source is the
    folder as logged params give it (relative to the repository)."""
    root = repository_root()
    locked, stage = lock_digests(root), dvc_stage()
    for folder, split, role in data_sets(config, roles):
        relative = portable_value(str(folder.resolve()), root)
        holders = (relative, *map(str, Path(relative).parents))
        output = next((path for path in holders if path in locked), None)
        writer, md5 = locked.get(output, (None, None))
        own = hashlib.sha256((folder / "manifest.csv").read_bytes()).hexdigest()[:16]
        digest = (f"manifest sha256 {own}" if md5 is None or writer == stage else
                  f"dvc md5 {md5}" + ("" if output == relative else f" ({output})"))
        log_data_set(folder, split, role, relative, digest)


def log_data_set(folder: Path, split: str | None, role: str, source: str, digest: str) -> None:
    """Log ``<folder>/manifest.csv`` (its ``split`` rows, or all) as an input of the active run,
    named ``<folder name>[/<split>]``, with ``digest`` ("dvc md5 <md5>[ (<output>)]" or "manifest
    sha256 <hex>")."""
    import mlflow.data
    import pandas as pd

    frame = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    if split is not None:
        frame = frame[frame["split"] == split]
    name = folder.name if split is None else f"{folder.name}/{split}"
    with warnings.catch_warnings():  # MLflow registers its local source twice ("" and file:)
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple")
        dataset = mlflow.data.from_pandas(frame, source=source, name=name,
                                          digest=digest.split()[2].removesuffix(".dir"))
    counts = sorted(frame["label"].value_counts().items()) if "label" in frame else []
    mlflow.log_input(dataset, context=role, tags={"digest": digest, "images": str(len(frame)),
                                                  **{f"class.{label}": str(n) for label, n in counts}})


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
