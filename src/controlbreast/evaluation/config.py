"""The ``synthetic_eval``, ``evaluate``, ``synthetic_filter`` and ``segmenter`` sections of
``params.yaml``, beside the measures that read them: the synthetic set's realism, its filter and
lesion judge, and the arms on the test split and external sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controlbreast.data.config import PhantomConfig
from controlbreast.sections import PositiveInt, Section


class SyntheticEvalConfig(Section):
    """``evaluate-synthetic``: realism, control fidelity, class fidelity and memorisation.

    Features for FID/KID/precision-recall and for nearest neighbours come from the real-only
    classifier (``<paths.classifiers>/real/seed-<classifier_seed>``; null: the seed with the best
    validation AUC). ``kid_subset_size`` is capped at the smallest set compared.
    ``inception_weights``: a local torch-fidelity Inception-v3 weights file
    (``weights-inception-2015-12-05-*.pth``, read as tensors only, or ``.safetensors``) adds the
    conventional Inception FID; null skips it (nothing is ever downloaded). A synthetic image
    counts as a likely copy when its nearest training image has feature cosine >= ``copy_cosine``
    or SSIM >= ``copy_ssim``. ``separability_epochs``: epochs of the real-vs-synthetic discriminator
    (``classifier.model``; 0 skips the test), scored with ``bootstrap`` resamples.
    """

    classifier_seed: int | None = None
    kid_subset_size: Annotated[int, Field(ge=2)] = 100
    kid_subsets: PositiveInt = 100
    prc_neighborhood: PositiveInt = 3
    inception_weights: Path | None = None
    edge_tolerance: Annotated[int, Field(ge=0, le=10)] = 2
    copy_cosine: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.99
    copy_ssim: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9
    grid_rows: Annotated[int, Field(ge=1, le=64)] = 8
    closest_pairs: Annotated[int, Field(ge=1, le=64)] = 12
    separability_epochs: Annotated[int, Field(ge=0, le=100)] = 5
    bootstrap: Annotated[int, Field(ge=100, le=100_000)] = 1000
    seed: int = 0


class ExternalSetConfig(Section):
    """One external test set: any source ingest knows, ingested by the same code into
    ``<paths.external>/<name>/``, test-only. ``root``/``manifest``/``label_map`` as in ``data``;
    ``phantom``: the generator's settings for ``source: phantom`` (e.g. another seed and scanner)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    source: Literal["phantom", "busi", "csv"] = "phantom"
    root: Path | None = None
    manifest: Path | None = None
    label_map: dict[str, str] = Field(default_factory=dict)
    phantom: PhantomConfig = PhantomConfig()

    @model_validator(mode="after")
    def _located(self) -> ExternalSetConfig:
        needs = {"busi": ("root",), "csv": ("root", "manifest")}.get(self.source, ())
        missing = [key for key in needs if getattr(self, key) is None]
        if missing:
            root = ("the folder with one subfolder per label" if self.source == "busi" else
                    "the folder the manifest's paths are relative to")
            raise ValueError(f"external set {self.name!r} (source {self.source}) lacks "
                             f"{' and '.join(missing)} (root: {root})")
        return self


class EvaluateConfig(Section):
    """``evaluate``: test-split metrics with bootstrap intervals, and the paired arm differences.

    ``positive_class`` is the class of the binary view (AUC, sensitivity, specificity), null for the
    last of ``data.classes`` (``malignant``, or ``cancer`` in the two-class setup). Intervals are
    percentile intervals over ``bootstrap`` class-stratified resamples of the test images.
    ``external`` defaults to one phantom "second scanner" (other patients, coarser speckle, less
    gain, darker depth); ``[]`` evaluates on the test split alone.
    """

    positive_class: str | None = None
    bootstrap: Annotated[int, Field(ge=100, le=100_000)] = 1000
    bootstrap_seed: int = 0
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    calibration_bins: Annotated[int, Field(ge=2, le=100)] = 10
    external: tuple[ExternalSetConfig, ...] = (ExternalSetConfig(
        name="phantom-scanner-b", phantom=PhantomConfig(
            patients_per_class=30, max_images_per_patient=1, render_size=128, seed=8,
            speckle_size=1.4, gain_db=-4.0, depth_db=-6.0)),)

    @model_validator(mode="after")
    def _distinct_names(self) -> EvaluateConfig:
        names = [e.name for e in self.external]
        if len(set(names)) != len(names):
            raise ValueError(f"external set names must be distinct, got {names}")
        return self


class SyntheticFilterConfig(Section):
    """``train-filter`` / ``filter-synthetic``: label-consistency filtering of the synthetic set.

    A classifier (``classifier``'s model and augmentation) trained on the real **training** split
    alone, for a fixed ``epochs`` (no validation image chooses anything), scores every synthetic
    image; an image is kept when its intended class has probability >= ``threshold`` (τ) and,
    with ``drop_copies``, it is not a likely copy of a training image (``synthetic_eval.copy_cosine``
    in the filter's features, or ``copy_ssim``). Arms with ``synthetic: filtered`` draw only kept images.
    """

    threshold: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    drop_copies: bool = True
    epochs: PositiveInt = 10
    seed: int = 0


class SegmenterConfig(Section):
    """``train-segmenter``: a small U-Net trained on the real training split's lesion masks (normal
    images as empty masks), the judge of whether a synthetic image draws its lesion inside the mask
    of the image its control came from (``evaluate-synthetic``). ``channels``: widths of its levels
    (each after the first halves the resolution); a pixel is lesion where its probability is at
    least ``threshold``.
    """

    channels: Annotated[list[PositiveInt], Field(min_length=2, max_length=5)] = Field(
        default_factory=lambda: [16, 32, 64])
    steps: PositiveInt = 200
    batch_size: PositiveInt = 16
    learning_rate: Annotated[float, Field(gt=0.0)] = 3e-3
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    seed: int = 0
