"""``controlbreast generate [--shard i/n]``: the synthetic set → ``paths.synthetic``; ``controlbreast
generate-guided``: the same rows real-guided (``generate.guided_strength``) → ``paths.synthetic_guided``
(an empty set when that strength is null). Under ``accelerate launch -m controlbreast generate`` each
process (one per GPU) draws its own shard."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.generation.generate import (
    generate_set,
    guided_config,
    guided_ratio,
    shortfall,
    training_rows,
    write_empty_set,
)
from controlbreast.generation.staging import Shard
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, overrides, tuned_values


def main(params: Path, shard: str | None = None, guided: bool = False) -> None:
    """Generate the configured set (``guided``: the real-guided one), or one shard of it (with the
    tuned guidance when ``tune.n_trials`` > 0); log its params (the applied values), counts and
    timing to MLflow."""
    config = load_config(params)
    unused = "generate.guided_strength is null" if guided_config(config) is None else \
        "no recipe has synthetic: guided" if guided_ratio(config) is None else None
    if guided and unused:  # its run says so: every DVC stage has one
        with stage_run(config, "generate_guided", ("generate",), data=()):
            mlflow.set_tag("guided_set", "none")
            write_empty_set(Path(config.paths.synthetic_guided), config.controls.channels)
        print(f"generate-guided: {unused}: no real-guided set ({config.paths.synthetic_guided} holds none)")
        return
    config = guided_config(config) if guided else config
    part = Shard.parse(shard) if shard else Shard.from_environment()
    unread = ("filter_threshold",) if guided else ("mix_ratio", "filter_threshold")  # the guided set's size
    tuned = {k: v for k, v in tuned_values(config).items() if k not in unread}  # follows the tuned mix_ratio
    name = "generate-guided" if guided else "generate"
    for line in overrides(config, tuned, params):
        print(f"{name}: {line}")
    config = apply_tuned(config, tuned)
    problem = shortfall(config, training_rows(config.paths.prepared))
    if problem:  # a warning, not an error: evaluate-synthetic alone can use a smaller set
        print(f"{name}: warning: {problem}", file=sys.stderr)
    with stage_run(config, name.replace("-", "_"), ("seed", "generate", "sampling", "controls"),
                   data=("training", "synthetic")):
        mlflow.set_tag("tuned", str(bool(tuned)).lower())
        mlflow.log_params({f"tuned.{key}": value for key, value in tuned.items()})
        summary = generate_set(config, shard=part, guided=guided)
        mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    drawn = (f"drew {summary['images_drawn']} images ({len(summary['chunks_drawn'])} of "
             f"{summary['chunks']} chunks) in {summary['sampling_seconds']:.1f} s "
             f"({summary['images_per_second']:.1f} images/s)")
    if summary["assembled"]:
        print(f"{name}: {summary['images']} images from {summary['controls_used']} training controls "
              f"-> {config.paths.synthetic} (strength {config.generate.strength:g}); {drawn}")
    else:
        print(f"{name}: shard {part.index}/{part.count}: {drawn} into {summary['staging']}; the set is "
              "swapped in when every shard has finished")
