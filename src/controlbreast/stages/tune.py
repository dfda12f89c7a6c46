"""``controlbreast tune``: Optuna searches guidance scale and mix ratio on the validation split →
``<paths.metrics>/tune.json`` (read by ``generate`` and ``train_classifiers``) and
``<paths.reports>/tune/*.png``; the study lives in ``tune.storage``, each trial a nested MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.outputs import write_atomic
from controlbreast.tracking import stage_run
from controlbreast.tuning.tracking import log_summary, summary_line
from controlbreast.tuning.tuned import tune_json

SECTIONS = ("tune", "classifier", "generate", "sampling")


def main(params: Path, workers: int | None = None, storage: str | None = None) -> None:
    """Tune (or, with ``tune.n_trials: 0``, record that nothing is tuned), log, write tune.json."""
    from controlbreast.tuning.run import WorkerArgs, run_tune, study_name

    config = load_config(params)
    report = Path(config.paths.reports) / "tune"
    with stage_run(config, "tune", SECTIONS) as run:
        if config.tune.n_trials == 0:
            report.mkdir(parents=True, exist_ok=True)  # a DVC output, present even when empty
            summary = {"n_trials": 0, "best_params": {}, "note": "tuning off: params.yaml's values hold"}
        else:
            args = WorkerArgs(str(params), storage or config.tune.storage, study_name(config),
                              mlflow.get_tracking_uri(), run.info.experiment_id,
                              run.info.run_id, workers or config.tune.workers)
            summary = run_tune(config, args, report)
            log_summary(summary, report)
        # never an empty folder: DVC does not restore an empty output on checkout or pull, and the
        # report stage depends on this one
        write_atomic(report / "README.txt", (f"Figures of the tuning study; the numbers are in "
                                             f"{tune_json(config)}. {summary.get('note', '')}\n").encode())
        write_atomic(tune_json(config), json.dumps(summary, indent=2).encode())
    print(summary_line(summary, tune_json(config)))


def cache(params: Path, prune: bool = False) -> None:
    """List the cached synthetic sets of tuning; with ``prune``, delete those of other models."""
    from controlbreast.tuning.objective import cache_entries, prune_cache

    config = load_config(params)
    for entry in cache_entries(config):
        state = "current models" if entry["current"] else "other models"
        print(f"{entry['folder']}: {entry['images']} images, guidance {entry['guidance_scale']}, "
              f"{entry['mib']:.1f} MiB ({state})")
    if prune:
        for folder in prune_cache(config):
            print(f"deleted {folder}")
