"""One tuning run: open (or join) the study, run its workers, summarise, draw, log.

The study's name is ``tune.study_name`` plus a hash of what the objective depends on besides the
searched dimensions (models, prepared data, classifier settings, the set's size and sampler), so a
rerun after the ControlNet or the classifier changed starts a fresh study instead of mixing
trials scored against other models; a rerun with nothing changed finds the study complete and
runs no trial.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from controlbreast.classify.models import set_threads
from controlbreast.config import Config, load_config
from controlbreast.errors import ConfigError
from controlbreast.generation.generate import model_hash, training_rows
from controlbreast.mixing import check_mix_fits
from controlbreast.tuning import plots
from controlbreast.tuning.objective import Objective
from controlbreast.tuning.study import (
    check_finished,
    check_storage_url,
    finished,
    open_storage,
    open_study,
    optimize,
    run_workers,
    summarise,
)
from controlbreast.tuning.tracking import TrialLogger


@dataclass(frozen=True)
class WorkerArgs:
    """What a worker process needs (picklable): the params file, the storage and the parent run."""

    params: str
    storage: str
    study_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    workers: int


def study_name(config: Config) -> str:
    """``tune.study_name`` + a hash of the objective's fixed context (module docstring)."""
    classifier = config.classifier.model_dump(mode="json", exclude={"mix_ratio", "registry"})
    manifest = Path(config.paths.prepared) / "manifest.csv"
    context = {"models": model_hash(config.paths.models), "classifier": classifier,
               "prepared": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None,
               "generate": config.generate.model_dump(mode="json", exclude={"per_class"}),
               "sampling": config.sampling.model_dump(mode="json"), "per_class": config.tune.per_class,
               "seeds": list(config.tune.seeds), "classes": list(config.data.classes)}
    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.tune.study_name}-{digest}"


def steps(config: Config) -> int:
    """Reported steps of a trial: epochs of each seed, one seed after another."""
    return config.classifier.epochs * len(config.tune.seeds)


def worker(args: WorkerArgs, index: int = 0) -> None:
    """Worker ``index``: build the objective, join the study, run trials until it holds ``n_trials``."""
    config = load_config(args.params)
    set_threads(config.tune.threads)  # sampling too, not only the classifiers
    tune = config.tune.model_copy(update={"storage": args.storage})
    study = open_study(tune, open_storage(args.storage, tune), args.study_name, steps(config), index)
    logger = TrialLogger(args.tracking_uri, args.experiment_id, args.parent_run_id)
    optimize(study, Objective.build(config), tune.n_trials, callbacks=[logger])


def run_tune(config: Config, args: WorkerArgs, report_folder: Path) -> dict:
    """Run the study with ``args.workers`` workers (1: in this process); returns ``tune.json``."""
    if args.workers > 1 and ":memory:" in args.storage:
        raise ConfigError("tune.storage: an in-memory database cannot be shared by workers")
    check_storage_url(args.storage)
    check_mix_fits(config.tune, len(config.data.classes),  # before the study exists
                   len(training_rows(config.paths.prepared)))
    tune = config.tune.model_copy(update={"storage": args.storage})
    study = open_study(tune, open_storage(args.storage, tune), args.study_name, steps(config))
    before, start = finished(study), time.perf_counter()
    lost: list[str] = []
    if args.workers == 1:
        worker(args)
    else:
        lost = run_workers(worker, (args,), args.workers)
        check_finished(study, tune.n_trials, lost)
    seconds = time.perf_counter() - start
    summary = summarise(study, seconds)
    if args.workers > 1:
        summary["lost_workers"] = lost
    summary["trials_this_run"] = finished(study) - before
    summary["trials_per_minute"] = summary["trials_this_run"] / max(seconds, 1e-9) * 60
    summary["figures"] = [path.name for path in plots.render_all(study, report_folder)]
    return summary
