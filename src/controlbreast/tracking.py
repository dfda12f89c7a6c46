"""The one place that opens MLflow runs.

Every stage logs to the same SQLite store (``<paths.mlruns>/mlflow.db``) with artifacts under
``<paths.mlruns>/artifacts``, so ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` from
the repository root shows all of them. Runs are tagged with the stage, the git commit and
whether the tree had uncommitted changes (``git_dirty``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controlbreast.config import Config


def tracking_uri(mlruns: Path) -> str:
    """SQLite URI of the store under ``mlruns`` (absolute, so any working directory works)."""
    return f"sqlite:///{(Path(mlruns).resolve() / 'mlflow.db').as_posix()}"


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


def use_store(config: Config) -> str:
    """Point MLflow at the project's store and experiment; returns the experiment id."""
    import mlflow

    mlruns = Path(config.paths.mlruns)
    mlruns.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(mlruns))
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (mlruns.resolve() / "artifacts").as_uri()
    return mlflow.create_experiment(config.tracking.experiment, artifact_location=artifacts)


@contextmanager
def stage_run(config: Config, stage: str, sections: tuple[str, ...]) -> Iterator[Any]:
    """An MLflow run for one stage, with the params of the ``sections`` it reads logged flat."""
    import mlflow

    experiment_id = use_store(config)
    tags = {"stage": stage}
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["git_dirty"] = str(git_dirty()).lower()
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=tags) as run:
        dumped = config.model_dump(mode="json")
        mlflow.log_params(flatten({key: dumped[key] for key in sections}))
        yield run


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
