"""The ``tune`` section of ``params.yaml``, beside the Optuna study that reads it: the search space,
the bounds each tuned dimension may take, and the storage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from controlbreast.credentials import password_problem
from controlbreast.sections import PositiveInt, Section


class RangeConfig(Section):
    """One searched dimension: ``low``..``high`` (inclusive); ``log`` samples on a log scale;
    ``step`` discretises it (a guidance step makes trials share synthetic sets)."""

    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeConfig:
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} > high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"log needs low > 0, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples one or the other)")
        return self


# what each tuned dimension may be, as the section it lands in allows it
DIMENSION_BOUNDS = {"guidance_scale": (1.0, 30.0), "mix_ratio": (1e-6, 100.0),
                    "controlnet_scale": (0.0, 5.0), "synthetic_count": (1.0, 100_000.0),
                    "strength": (0.01, 1.0), "filter_threshold": (0.0, 0.99)}


class TuneConfig(Section):
    """``tune``: Optuna searches ``generate.sampling.guidance_scale`` and ``classifier.mix_ratio``
    (and optionally ``controlnet_scale``, ``strength`` (real-guided generation, ``generate.strength``),
    ``synthetic_count``, the per-class size of the trial's synthetic set, and ``filter_threshold``,
    the label-consistency filter's τ (``synthetic_filter.threshold``: a trial draws only the images
    of its set that the filter keeps at its τ); null: not searched) on the **validation** split.

    ``n_trials``: finished (complete or pruned) trials the study should hold; 0 turns tuning off and
    ``generate``/``train_classifiers`` keep params.yaml's values. Each trial draws ``per_class``
    images per class (unless ``synthetic_count`` is searched; ``auto``: the fewest that let
    ``mix_ratio.high`` draw from it, ``mixing.tune_per_class``), trains ``real+synthetic`` with each of
    ``seeds`` and scores the mean validation macro AUC. ``storage``: any SQLAlchemy URL (SQLite by
    default, beside the repository in ``optuna/``, which DVC never deletes; ``postgresql://`` with
    its password in the environment, never in the URL) or ``grpc://HOST:PORT``
    (``controlbreast tune-server``). Heartbeats every ``heartbeat_interval`` s mark a trial whose
    worker died FAILED after ``grace_period`` s; ``retry_failed`` re-queues it that many times.
    ``threads``: torch CPU threads per worker (0: torch's default); one is several times faster
    than two for these small models when anything else shares the cores.
    """

    n_trials: Annotated[int, Field(ge=0, le=10_000)] = 4
    seeds: tuple[int, ...] = (0,)
    sampler_seed: int = 0
    pruner: Literal["median", "hyperband", "none"] = "median"
    storage: str = "sqlite:///optuna/tune.db"
    study_name: Annotated[str, Field(min_length=1, max_length=200)] = "controlbreast"
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    per_class: PositiveInt | Literal["auto"] = 16
    guidance_scale: RangeConfig = RangeConfig(low=1.0, high=3.0, step=1.0)
    mix_ratio: RangeConfig = RangeConfig(low=0.03, high=0.15, log=True)
    controlnet_scale: RangeConfig | None = None
    synthetic_count: RangeConfig | None = None
    strength: RangeConfig | None = None
    filter_threshold: RangeConfig | None = None
    heartbeat_interval: Annotated[int, Field(ge=1, le=3600)] = 10
    grace_period: Annotated[int, Field(ge=2, le=36_000)] = 30
    retry_failed: Annotated[int, Field(ge=0, le=100)] = 0
    threads: Annotated[int, Field(ge=0, le=256)] = 1

    @model_validator(mode="after")
    def _valid(self) -> TuneConfig:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be one or more distinct integers")
        for name, (lowest, highest) in DIMENSION_BOUNDS.items():
            dimension = getattr(self, name)
            if dimension is not None and (dimension.low < lowest or dimension.high > highest):
                raise ValueError(f"{name} must lie within [{lowest:g}, {highest:g}], "
                                 f"got [{dimension.low:g}, {dimension.high:g}]")
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError("grace_period must exceed heartbeat_interval (a live worker would look dead)")
        if problem := password_problem(self.storage):  # before stage_run logs it as a param
            raise ValueError(f"storage: {problem}")
        return self

    def dimensions(self) -> dict[str, RangeConfig]:
        """The searched dimensions, by name, in a fixed order."""
        return {name: getattr(self, name) for name in DIMENSION_BOUNDS if getattr(self, name) is not None}
