"""Where the numbers came from: git commit, params, data and model hashes, MLflow runs.

Hashes come from ``dvc.lock`` (what ``dvc repro`` recorded for each stage's outputs), so a reader
can check that the page belongs to the data and models they have (``dvc status``). Each stage's
latest top-level MLflow run is linked with the address ``mlflow ui`` serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlbreast.config import Config
from controlbreast.report.document import Link, ReportSection, Table, Text


@dataclass(frozen=True)
class StageRun:
    """The latest top-level MLflow run of one stage."""

    stage: str
    run_id: str
    experiment_id: str
    status: str
    start_ms: int

    def url(self, ui: str) -> str:
        """The run's page in ``mlflow ui`` (hash routing, as MLflow 2 and 3 serve it), in its
        Model training view (MLflow 3 opens a new browser's first page on GenAI traces)."""
        from controlbreast.tracking import UI_MODEL_TRAINING

        return f"{ui.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}?{UI_MODEL_TRAINING}"


def output_hashes(lock: dict) -> list[tuple[str, str, str, str]]:
    """``(stage, path, md5, size)`` of every output in ``dvc.lock``: data, models, metrics."""
    found = []
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            size = out.get("size")
            files = f", {out['nfiles']} files" if out.get("nfiles") else ""
            found.append((stage, str(out.get("path")), str(out.get("md5", "")),
                          f"{size / 1e6:.2f} MB{files}" if isinstance(size, int) else ""))
    return found


WRITING = "writing this page"  # the status shown for the report's own run, still open as it writes


def stage_runs(config: Config, experiment_id: str, current: str | None = None) -> list[StageRun]:
    """The newest top-level run of each stage in the project's experiment (by run name: the DVC
    stage; nested trial, arm and seed runs left out), oldest stage first. The run ``current`` (the
    report's own, unfinished while the page is written) reads ``WRITING``, not RUNNING."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], max_results=5000,
                                      order_by=["attributes.start_time DESC"])
    latest: dict[str, StageRun] = {}
    for run in runs:
        stage = run.info.run_name if "stage" in run.data.tags else None
        if stage and "mlflow.parentRunId" not in run.data.tags and stage not in latest:
            status = WRITING if run.info.run_id == current else run.info.status
            latest[stage] = StageRun(stage, run.info.run_id, run.info.experiment_id, status,
                                     run.info.start_time or 0)
    return sorted(latest.values(), key=lambda r: r.start_ms)


def provenance_section(config: Config, lock: dict, commit: str | None, dirty: bool | None,
                       runs: list[StageRun]) -> ReportSection:
    """Commit, MLflow runs (linked), output hashes and every param (folded)."""
    from controlbreast.tracking import loggable_params, repository_root

    state = {True: "uncommitted changes (dirty): the commit alone does not reproduce this page",
             False: "clean", None: "unknown"}[dirty]
    blocks: list = [Text(f"Git commit {commit or 'unknown (not a git repository)'}; working tree {state}.")]
    ui = config.report.mlflow_ui
    if runs:
        blocks.append(Table(f"MLflow runs, newest per stage (open with `mlflow ui` serving {ui})",
                            ("stage", "run", "status"),
                            tuple((r.stage, Link(r.run_id[:12], r.url(ui)), r.status) for r in runs)))
    else:
        blocks.append(Text("No MLflow runs found in the store.", note=True))
    hashes = output_hashes(lock)
    if hashes:
        blocks.append(Table("Data, model and metrics hashes (dvc.lock)", ("stage", "output", "md5", "size"),
                            tuple(hashes)))
    else:
        blocks.append(Text("No dvc.lock: hashes are recorded by `dvc repro`.", note=True))
    params = loggable_params(config.model_dump(mode="json"), repository_root())
    blocks.append(Table(f"Params ({len(params)})", ("param", "value"),
                        tuple((key, str(value)) for key, value in params.items()), folded=True))
    return ReportSection("provenance", "Provenance", blocks)
