"""Typed, validated view of ``params.yaml``: the whole-file model and the loader.

Every knob of the pipeline lives in ``params.yaml``; this module is the one place that reads it.
Each section is defined beside the code that reads it (``data/config.py`` for ``data`` and
``phantom``, ``diffusion/config.py`` for the models, training and sampling, and so on; ``paths``,
``tracking`` and the ``Section`` base in ``sections.py``), so a knob and its use are edited together.
The sections are assembled here because the loader validates the whole file at once: a misspelt
key, a wrong type or an out-of-range value anywhere stops any stage before any work, with an error
naming the key and the file. Section modules import only ``sections`` and lower packages'
sections, so importing this module never imports library code.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError, model_validator

from controlbreast.classify.config import ClassifierConfig
from controlbreast.controls.config import ControlsConfig
from controlbreast.data.config import DataConfig, PhantomConfig
from controlbreast.diffusion.config import DiffusionConfig, SamplingConfig, TrainConfig
from controlbreast.errors import ConfigError
from controlbreast.evaluation.config import (
    EvaluateConfig,
    SegmenterConfig,
    SyntheticEvalConfig,
    SyntheticFilterConfig,
)
from controlbreast.generation.config import GenerateConfig
from controlbreast.quality.config import QualityConfig
from controlbreast.report.config import ReportConfig
from controlbreast.sections import PathsConfig, Section, TrackingConfig
from controlbreast.tuning.config import TuneConfig


class Config(Section):
    """The whole ``params.yaml``."""

    seed: int = 0
    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    phantom: PhantomConfig = PhantomConfig()
    controls: ControlsConfig = ControlsConfig()
    quality: QualityConfig = QualityConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train_base: TrainConfig = TrainConfig()
    train_controlnet: TrainConfig = TrainConfig(steps=300)  # the control F1 ratio needs the steps
    sampling: SamplingConfig = SamplingConfig()
    generate: GenerateConfig = GenerateConfig()
    synthetic_eval: SyntheticEvalConfig = SyntheticEvalConfig()
    segmenter: SegmenterConfig = SegmenterConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    synthetic_filter: SyntheticFilterConfig = SyntheticFilterConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tune: TuneConfig = TuneConfig()
    tracking: TrackingConfig = TrackingConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _guided_set(self) -> Config:
        """A recipe that draws real-guided images needs the set that holds them."""
        guided = [name for name, recipe in self.classifier.recipes.items() if recipe.synthetic == "guided"]
        if guided and self.generate.guided_strength is None:
            raise ValueError(f"classifier.recipes {guided} draw real-guided images (synthetic: guided) but "
                             "generate.guided_strength is null: set it (e.g. 0.6) or remove those recipes")
        return self

    @model_validator(mode="after")
    def _external_labels(self) -> Config:
        """An external set's ``label_map`` lands in ``data.classes``, as the training data's must."""
        for external in self.evaluate.external:
            unknown = sorted(set(external.label_map.values()) - set(self.data.classes))
            if unknown:
                raise ValueError(f"evaluate.external {external.name!r}: label_map maps to {unknown}, "
                                 f"which are not in data.classes {list(self.data.classes)}")
        return self


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid parameters"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        message = "unknown key" if item["type"] == "extra_forbidden" else message
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict, source: Path | str = "params.yaml") -> Config:
    """Validate a params mapping; raises ``ConfigError`` naming ``source`` and each bad key."""
    try:
        return Config.model_validate(raw or {})
    except ValidationError as error:
        raise ConfigError(_describe(error, Path(source))) from None


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading scalars as YAML 1.2 (and DVC, which rewrites params.yaml on
    ``dvc exp run --set-param``) does: ``1e-3`` is a float, and only true/false are booleans, so
    ``mixed_precision: no`` stays the string "no" (YAML 1.1 would read False)."""


_BOOL = "tag:yaml.org,2002:bool"
_ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_ParamsLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_params(path: Path | str = "params.yaml") -> dict:
    """The raw mapping of a params file (YAML 1.2 numbers), not yet validated."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_ParamsLoader)  # a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such params file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def parse_value(text: str) -> object:
    """One YAML value as params files read it (``1e-3`` a float, ``[0, 1]`` a list)."""
    return yaml.load(text, Loader=_ParamsLoader)


def load_config(path: Path | str = "params.yaml") -> Config:
    """Read and validate a params file."""
    return parse_config(read_params(path), path)
