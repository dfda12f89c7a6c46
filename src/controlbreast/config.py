"""Typed, validated view of ``params.yaml``.

Every knob of the pipeline lives in ``params.yaml``; this module is the one place that reads it.
Each section is a frozen pydantic model that forbids unknown keys, so a misspelt key, a wrong type
or an out-of-range value stops the run before any work, with an error naming the key and the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]

THREE_CLASSES = ("normal", "benign", "malignant")


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(Section):
    """Where each stage reads and writes, relative to the repository root.

    ``dvc.yaml`` reads the same keys through templating, so a path is written once.
    """

    prepared: Path = Path("data/prepared")
    controls: Path = Path("data/controls")
    metrics: Path = Path("metrics")
    reports: Path = Path("reports")
    synthetic: Path = Path("data/synthetic")
    mlruns: Path = Path("mlruns")


class SplitConfig(Section):
    """Target fractions of the train/val/test splits (of images, per class)."""

    train: Fraction = 0.7
    val: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        if min(self.train, self.val, self.test) <= 0:
            raise ValueError("every split needs a positive fraction")
        return self


class DataConfig(Section):
    """Which data set to ingest and how to prepare it.

    ``classes`` is the label space of every later stage. ``label_map`` maps a source label (a BUSI
    folder name, a CSV ``label`` value) to one of ``classes``; a source label that is itself a class
    needs no entry. Two-class use: ``classes: [no_cancer, cancer]`` with
    ``label_map: {normal: no_cancer, benign: no_cancer, malignant: cancer}``.
    """

    source: Literal["phantom", "busi", "csv"] = "phantom"
    root: Path | None = None
    manifest: Path | None = None
    classes: tuple[str, ...] = THREE_CLASSES
    label_map: dict[str, str] = Field(default_factory=dict)
    lesion_labels: tuple[str, ...] = ("benign", "malignant")
    image_size: Annotated[int, Field(ge=16, le=2048)] = 64
    resize: Literal["pad", "crop"] = "pad"
    split: SplitConfig = SplitConfig()
    near_duplicate_bits: Annotated[int, Field(ge=0, le=32)] = 6
    group_salt: str = "controlbreast"
    on_error: Literal["skip", "fail"] = "fail"
    workers: Annotated[int, Field(ge=1, le=64)] = 2

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"classes must be at least two distinct names, got {self.classes}")
        unknown = sorted(set(self.label_map.values()) - set(self.classes))
        if unknown:
            raise ValueError(f"label_map maps to {unknown}, which are not in classes")
        if self.source == "busi" and self.root is None:
            raise ValueError("source 'busi' needs data.root (the folder with benign/ malignant/ normal/)")
        if self.source == "csv" and (self.root is None or self.manifest is None):
            raise ValueError("source 'csv' needs data.root and data.manifest")
        return self

    def to_class(self, source_label: str) -> str | None:
        """The configured class of a source label, or None when it maps to none."""
        if source_label in self.label_map:
            return self.label_map[source_label]
        return source_label if source_label in self.classes else None


class PhantomConfig(Section):
    """The built-in generator of breast-ultrasound-like images (see ``data/phantom.py``)."""

    patients_per_class: PositiveInt = 80
    max_images_per_patient: Annotated[int, Field(ge=1, le=8)] = 3
    render_size: Annotated[int, Field(ge=32, le=1024)] = 128
    seed: int = 7


class ControlsConfig(Section):
    """Control images for the ControlNet.

    ``kind``: Canny ``edges``, lesion ``mask`` or both stacked as two channels. Canny thresholds
    are fixed when both ``canny_low`` and ``canny_high`` are set, else derived from each image's
    median (``low, high = (1 -+ canny_sigma) * median``), the usual automatic choice.
    """

    kind: Literal["edges", "mask", "edges+mask"] = "edges"
    canny_low: Annotated[int, Field(ge=0, le=255)] | None = None
    canny_high: Annotated[int, Field(ge=0, le=255)] | None = None
    canny_sigma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.33
    blur_kernel: Annotated[int, Field(ge=0, le=31)] = 5

    @model_validator(mode="after")
    def _thresholds(self) -> ControlsConfig:
        if (self.canny_low is None) != (self.canny_high is None):
            raise ValueError("set both canny_low and canny_high, or neither (automatic)")
        if self.canny_low is not None and self.canny_low >= self.canny_high:
            raise ValueError("canny_low must be below canny_high")
        if self.blur_kernel and self.blur_kernel % 2 == 0:
            raise ValueError("blur_kernel must be odd (or 0 for no blur)")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the control channels, in stacking order."""
        return tuple(self.kind.split("+"))


class QualityConfig(Section):
    """Bounds of the data-quality gate (``controlbreast validate``); failures name the key to relax.

    Intensities are fractions of the 8-bit range. ``black_level``/``saturated_level`` are the pixel
    values at or below/above which a pixel counts as black/saturated. Letterbox padding is black,
    so ``max_black_fraction`` must leave room for it.
    """

    min_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.02
    black_level: Annotated[int, Field(ge=0, le=255)] = 5
    saturated_level: Annotated[int, Field(ge=0, le=255)] = 250
    max_black_fraction: Fraction = 0.9
    max_saturated_fraction: Fraction = 0.1
    min_mask_coverage: Fraction = 0.001
    max_mask_coverage: Fraction = 0.7
    split_tolerance: Fraction = 0.05
    near_duplicate_bits: Annotated[int, Field(ge=0, le=32)] = 6
    max_listed_ids: Annotated[int, Field(ge=1, le=1000)] = 5


class TrackingConfig(Section):
    """MLflow: a SQLite store under ``paths.mlruns`` and one experiment for the project."""

    experiment: str = "controlbreast"


class Config(Section):
    """The whole ``params.yaml``."""

    seed: int = 0
    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    phantom: PhantomConfig = PhantomConfig()
    controls: ControlsConfig = ControlsConfig()
    quality: QualityConfig = QualityConfig()
    tracking: TrackingConfig = TrackingConfig()


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid parameters"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict, source: Path | str = "params.yaml") -> Config:
    """Validate a params mapping; raises ``ConfigError`` naming ``source`` and each bad key."""
    try:
        return Config.model_validate(raw or {})
    except ValidationError as error:
        raise ConfigError(_describe(error, Path(source))) from None


def load_config(path: Path | str = "params.yaml") -> Config:
    """Read and validate a params file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such params file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_config(raw, path)
