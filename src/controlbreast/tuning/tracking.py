"""Each finished trial as a nested MLflow run under the study's parent run, logged with MLflow's
client directly (optuna-integration's ``MLflowCallback`` is deprecated), so worker processes log
under the parent that the ``tune`` stage opened; the study's summary on the parent run, and as the
stage's one printed line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import mlflow
import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from optuna.trial import FrozenTrial, TrialState

RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


@dataclass(frozen=True)
class TrialLogger:
    """An Optuna callback: one nested run per trial (params, value, state, duration, and the
    intermediate values as the ``val_auc`` curve, step = seed index x epochs + epoch)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        client = MlflowClient(self.tracking_uri)
        tags = {"mlflow.parentRunId": self.parent_run_id, "stage": "tune", "optuna.study": study.study_name,
                "optuna.trial": str(trial.number), "optuna.state": trial.state.name}
        began = _millis(trial.datetime_start)
        run = client.create_run(self.experiment_id, start_time=began, run_name=f"trial-{trial.number}",
                                tags=tags)
        stamp = _millis(trial.datetime_complete) if trial.datetime_complete else began
        metrics = [Metric("val_auc", value, stamp, int(step))
                   for step, value in trial.intermediate_values.items()]
        if trial.value is not None:
            metrics.append(Metric("value", trial.value, stamp, 0))
        if trial.duration is not None:
            metrics.append(Metric("seconds", trial.duration.total_seconds(), stamp, 0))
        params = [Param(k, str(v)) for k, v in trial.params.items()]
        params.append(Param("synthetic_set", str(trial.user_attrs.get("synthetic_set", ""))))
        client.log_batch(run.info.run_id, metrics=metrics, params=params,
                         tags=[RunTag("state", trial.state.name)])
        client.set_terminated(run.info.run_id, RUN_STATUS.get(trial.state, "FAILED"), end_time=stamp)


def _millis(moment: datetime) -> int:
    """A trial's datetime as MLflow's epoch milliseconds, so the run shows when the trial ran."""
    return int(moment.timestamp() * 1000)


def log_summary(summary: dict, report: Path) -> None:
    """``tune.json`` on the active (parent) run: best params, trial counts by state (``trials_fail``
    counts trials of lost workers), speed, figures; the lost workers as tag ``tune.lost_workers``."""
    mlflow.log_params({f"best.{key}": value for key, value in summary["best_params"].items()})
    mlflow.set_tag("optuna.study", summary["study"])
    if summary.get("lost_workers"):
        mlflow.set_tag("tune.lost_workers", ", ".join(summary["lost_workers"]))
    metrics = {f"trials_{state}": count for state, count in summary["trials"].items()}
    metrics |= {"trials_per_minute": summary["trials_per_minute"], "seconds": summary["seconds"]}
    if summary["best_val_auc"] is not None:
        metrics["best_val_auc"] = summary["best_val_auc"]
    mlflow.log_metrics(metrics)
    for name in summary["figures"]:
        mlflow.log_artifact(str(report / name), artifact_path="tune")


def summary_line(summary: dict, path: Path) -> str:
    """What ``tune`` prints: the study, its trials by state, speed, the best point, lost workers."""
    if not summary["best_params"]:
        return f"tune: {summary['note']} -> {path}"
    best = ", ".join(f"{key} {value:.3g}" for key, value in summary["best_params"].items())
    lost = summary.get("lost_workers")
    lost_text = f"; lost {', '.join(lost)}, the others finished the study" if lost else ""
    return (f"tune: study {summary['study']}: {summary['trials']}, {summary['trials_per_minute']:.2f} "
            f"trials/min{lost_text}; best {best}: validation AUC {summary['best_val_auc']:.3f} "
            f"(optimistic) -> {path}")
