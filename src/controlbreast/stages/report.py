"""``controlbreast report``: every stage's outputs → ``<paths.reports>/index.html`` (one page,
self-contained), ``summary.md`` (its Markdown twin) and the training-curve CSV; the page is logged
to MLflow as an artifact of this stage's run."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.report.build import build_report, write_report
from controlbreast.report.inputs import collect
from controlbreast.report.provenance import stage_runs
from controlbreast.tracking import DATA_ROLES, git_commit, git_dirty, pipeline_outputs, stage_run


def main(params: Path) -> None:
    """Collect, build, write, log; print where the page is and how long it took."""
    start = time.perf_counter()
    config = load_config(params)
    with stage_run(config, "report", ("report",), data=DATA_ROLES) as run:
        inputs = collect(config)
        runs = stage_runs(config, run.info.experiment_id, run.info.run_id)
        report = build_report(config, inputs, git_commit(), git_dirty(pipeline_outputs(config)), runs)
        written = write_report(report, inputs, Path(config.paths.reports))
        mlflow.log_artifact(str(written.html), artifact_path="report")
        mlflow.log_artifact(str(written.markdown), artifact_path="report")
        seconds = time.perf_counter() - start
        mlflow.log_metrics({"seconds": seconds, "figures": len(written.figures)})
    print(f"report: {len(report.sections)} sections, {len(written.figures)} figures, {seconds:.1f} s -> "
          f"{written.html} (open it from file://), {written.markdown}")
