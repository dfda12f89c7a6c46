"""The base of every ``params.yaml`` section, and the sections no package owns.

Each section is a frozen pydantic model that forbids unknown keys and refuses values that would
only pass by pydantic's lax coercion, so a misspelt key or a wrong type stops the run before any
work. A package's section lives in its ``config.py`` beside the code that reads it; ``paths`` and
``tracking`` are read by every stage (and by the root ``tracking.py``), so they live here.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


def _scalar_types(annotation: Any) -> set[Any]:
    """The plain types a field admits: ``Annotated`` and unions unwrapped, a ``Literal`` as itself."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(_scalar_types(arg) for arg in get_args(annotation)))
    if origin is Literal:
        return {Literal}
    return {origin or annotation}


def _item_annotation(annotation: Any) -> Any | None:
    """``X`` of a ``tuple[X, ...]`` field (also inside ``Annotated``/``| None``), else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _item_annotation(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        items = [_item_annotation(arg) for arg in get_args(annotation)]
        return next((item for item in items if item is not None), None)
    if origin is tuple and len(get_args(annotation)) == 2 and get_args(annotation)[1] is Ellipsis:
        return get_args(annotation)[0]
    return None


def _coercion_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value`` would only pass by pydantic's lax coercion (``true`` as 1, ``"3"`` as 3,
    ``1`` as true), or None. Ints stay accepted for floats: YAML writes ``2.0`` as ``2`` too."""
    kinds = _scalar_types(annotation)
    numeric = bool(kinds & {int, float}) and bool not in kinds
    if numeric and isinstance(value, bool):
        return f"expected a number, got {str(value).lower()}"
    if numeric and isinstance(value, str) and not kinds & {str, Path, Literal}:
        return f"expected a number, got the string {value!r}"
    if kinds == {bool} and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    item = _item_annotation(annotation)
    if item is not None and isinstance(value, list | tuple):
        return next((f"item {n}: {problem}" for n, entry in enumerate(value)
                     if (problem := _coercion_problem(item, entry))), None)
    return None


class Section(BaseModel):
    """A params section: unknown keys, and values that only fit by coercion, are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        """Pydantic's lax mode would read ``steps: true`` as one step; refuse it instead."""
        problem = _coercion_problem(cls.model_fields[info.field_name].annotation, value)
        if problem:
            raise ValueError(problem)
        return value


class PathsConfig(Section):
    """Where each stage reads and writes, relative to the repository root.

    ``dvc.yaml`` reads the same keys through templating, so a path is written once.
    """

    prepared: Path = Path("data/prepared")
    controls: Path = Path("data/controls")
    metrics: Path = Path("metrics")
    reports: Path = Path("reports")
    synthetic: Path = Path("data/synthetic")
    synthetic_guided: Path = Path("data/synthetic-guided")
    fraction_generators: Path = Path("models/fraction-generators")
    synthetic_filter: Path = Path("data/synthetic-filter")
    models: Path = Path("models")
    checkpoints: Path = Path("models/checkpoints")
    classifiers: Path = Path("models/classifiers")
    external: Path = Path("data/external")
    mlruns: Path = Path("mlruns")
    tune_cache: Path = Path("data/tune-cache")


class TrackingConfig(Section):
    """MLflow: a SQLite store under ``paths.mlruns`` (or ``MLFLOW_TRACKING_URI``, which wins) and one
    experiment for the project."""

    experiment: str = "controlbreast"
