"""The tuned values, as the stages after ``tune`` apply them.

A leaf (config and errors only): ``stages/generate.py`` and ``stages/train_classifier.py`` import
it without pulling Optuna, torch or the generation code. ``tune.json`` is written by the ``tune``
stage (``tuning/study.py``); with ``tune.n_trials: 0`` nothing is read and params.yaml's values hold.
A tuned value that replaces a different one of params.yaml is said at stage start (``overrides``):
``classifier.mix_ratio: 5`` silently trained with 0.1 would read as a bug in the recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

from controlbreast.config import Config
from controlbreast.errors import DataError, MissingInputError

TUNE_JSON = "tune.json"


def tune_json(config: Config) -> Path:
    """Where the ``tune`` stage writes its result (``<paths.metrics>/tune.json``)."""
    return Path(config.paths.metrics) / TUNE_JSON


def tuned_values(config: Config) -> dict[str, float]:
    """The best trial's values (``guidance_scale``, ``mix_ratio``, ...), or {} when tuning is off."""
    if config.tune.n_trials == 0:
        return {}
    path = tune_json(config)
    if not path.is_file():
        raise MissingInputError(f"{path}: no tuning result (run `controlbreast tune`, or set "
                                "tune.n_trials: 0 to keep params.yaml's values)")
    result = json.loads(path.read_text())
    best = result.get("best_params")
    if not best:
        raise DataError(f"{path}: the study has no complete trial to take values from "
                        f"({result.get('trials', {})}); rerun tune or set tune.n_trials: 0")
    return {key: float(value) for key, value in best.items()}


def apply_tuned(config: Config, values: dict[str, float]) -> Config:
    """``config`` with the tuned values in the sections that use them (the set's sampler, its
    per-class size and real-guided strength, the classifier's mix ratio, the filter's τ)."""
    sampling = config.generate.sampling or config.sampling
    sampler = {key: values[key] for key in ("guidance_scale", "controlnet_scale") if key in values}
    generate = {"sampling": sampling.model_copy(update=sampler)}
    if "synthetic_count" in values:
        generate["per_class"] = round(values["synthetic_count"])
    if "strength" in values:
        generate["strength"] = values["strength"]
    classifier = {"mix_ratio": values["mix_ratio"]} if "mix_ratio" in values else {}
    threshold = {"threshold": values["filter_threshold"]} if "filter_threshold" in values else {}
    filtering = config.synthetic_filter.model_copy(update=threshold)
    return config.model_copy(update={"generate": config.generate.model_copy(update=generate),
                                     "classifier": config.classifier.model_copy(update=classifier),
                                     "synthetic_filter": filtering})


def overrides(config: Config, values: dict[str, float], params: Path | str) -> list[str]:
    """One line per params key whose value ``apply_tuned(config, values)`` changes: the key, its
    value in ``params``, the tuned value and where that came from."""
    applied = apply_tuned(config, values)
    before, after = config.generate.sampling or config.sampling, applied.generate.sampling
    prefix = "generate.sampling" if config.generate.sampling else "sampling"
    keys = [(f"{prefix}.{name}", getattr(before, name), getattr(after, name))
            for name in ("guidance_scale", "controlnet_scale")]
    keys += [("generate.per_class", config.generate.per_class, applied.generate.per_class),
             ("classifier.mix_ratio", config.classifier.mix_ratio, applied.classifier.mix_ratio),
             ("synthetic_filter.threshold", config.synthetic_filter.threshold,
              applied.synthetic_filter.threshold)]
    return [f"{key}: {old} in {params} is replaced by the tuned {new} (best trial of {tune_json(config)}; "
            "tune.n_trials: 0 keeps the params value)" for key, old, new in keys if old != new]
