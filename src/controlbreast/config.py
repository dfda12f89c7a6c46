"""Typed, validated view of ``params.yaml``.

Every knob of the pipeline lives in ``params.yaml``; this module is the one place that reads it.
Each section is a frozen pydantic model that forbids unknown keys, so a misspelt key, a wrong type
or an out-of-range value stops the run before any work, with an error naming the key and the file.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from controlbreast.credentials import password_problem
from controlbreast.errors import ConfigError

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]

THREE_CLASSES = ("normal", "benign", "malignant")
GROUP_SECRET_ENV = "CONTROLBREAST_GROUP_SECRET"
GROUP_SECRET_FILE_ENV = "CONTROLBREAST_GROUP_SECRET_FILE"


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
    synthetic_filter: Path = Path("data/synthetic-filter")
    models: Path = Path("models")
    checkpoints: Path = Path("models/checkpoints")
    classifiers: Path = Path("models/classifiers")
    external: Path = Path("data/external")
    mlruns: Path = Path("mlruns")
    tune_cache: Path = Path("data/tune-cache")


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


class MammographyConfig(Section):
    """How mammograms are prepared (``data/mammo.py``): breast crop and one laterality.

    ``crop_margin`` widens the breast's bounding box by this fraction of its size on every side.
    ``tissue_level`` is the grey level (0..1) under which a pixel may be background when Otsu's
    threshold is higher (films whose background is grey). Every image is flipped so the chest wall
    is on the left (the nipple points right); which way it faced is found from the tissue.
    """

    crop_margin: Annotated[float, Field(ge=0.0, le=0.5)] = 0.02
    tissue_level: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.08


class PatchConfig(Section):
    """Lesion-centred and background patches cut from each mammogram (``data/patches.py``).

    With ``enabled``, ingest writes patches of ``data.image_size`` px instead of whole images: one
    centred on each lesion (plus a uniform jitter of up to ``jitter`` of the patch side) and
    ``background`` from tissue away from every lesion, labelled ``background_label``. A patch spans
    ``image_size * mm_per_px`` mm where the pixel spacing is known (and ``mm_per_px`` set), else
    ``breast_fraction`` of the breast's width.
    """

    enabled: bool = False
    mm_per_px: Annotated[float, Field(gt=0.0, le=5.0)] | None = 0.2
    breast_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    jitter: Annotated[float, Field(ge=0.0, le=0.4)] = 0.1
    background: Annotated[int, Field(ge=0, le=32)] = 2
    background_label: str = "normal"


class DataConfig(Section):
    """Which data set to ingest and how to prepare it.

    ``classes`` is the label space of every later stage. ``label_map`` maps a source label (a BUSI
    folder name, a CSV ``label`` value) to one of ``classes``; a source label that is itself a class
    needs no entry. Two-class use: ``classes: [no_cancer, cancer]`` with
    ``label_map: {normal: no_cancer, benign: no_cancer, malignant: cancer}``. A source label that
    maps to no class is left out on purpose (listed in ``rejected.csv``), never an error.

    ``max_pixels`` bounds the pixels of one source image, checked from its header before decoding:
    100 MP is several times the largest mammograms (about 4000 x 5000 = 20 MP, 28 MP at most),
    while a decompression bomb (a 20000 x 20000 PNG of a few KB) is refused in one line. A source
    image with a side below ``min_side`` (a thumbnail, a 1 x 1 failed export) or with every pixel
    the same value (a blank frame) is a bad input (``on_error``): it would pass resizing unnoticed.
    Every entry of ``classes`` must be matched by a label of the source (a typo such as
    ``malignnat`` would otherwise leave every malignant image out as an unmapped label).
    Patient ids (CSV ``group_id``, DICOM PatientID) are stored as HMAC-SHA256 keyed by a secret
    from the environment (``CONTROLBREAST_GROUP_SECRET`` or ``CONTROLBREAST_GROUP_SECRET_FILE``),
    never from params: params are logged to MLflow and written to ``dvc.lock``.

    ``modality``: ``auto`` treats a DICOM whose Modality is ``MG`` (and the phantom's mammography
    mode) as a mammogram, anything else as ultrasound; mammograms are cropped to the breast and
    turned one way (``mammography``) and may be cut into patches (``patches``). ``bit_depth`` is
    the depth 16-bit rasters are scaled by (e.g. 12 for 12-bit films in 16-bit PNGs); None takes
    the file's own declaration (PNG sBIT, else 16), never an image's own maximum. Near-duplicates
    are hash pairs within ``near_duplicate_bits`` whose pixels also correlate at least
    ``near_duplicate_similarity`` (``splits.similarity``).
    """

    source: Literal["phantom", "busi", "csv"] = "phantom"
    modality: Literal["auto", "ultrasound", "mammography"] = "auto"
    root: Path | None = None
    manifest: Path | None = None
    classes: tuple[str, ...] = THREE_CLASSES
    label_map: dict[str, str] = Field(default_factory=dict)
    lesion_labels: tuple[str, ...] = ("benign", "malignant")
    image_size: Annotated[int, Field(ge=16, le=2048)] = 64
    resize: Literal["pad", "crop"] = "pad"
    split: SplitConfig = SplitConfig()
    near_duplicate_bits: Annotated[int, Field(ge=0, le=32)] = 6
    near_duplicate_similarity: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    near_duplicate_conflicts: Literal["drop", "keep", "fail"] = "drop"
    require_lesion_masks: bool = True
    max_pixels: Annotated[int, Field(ge=1024, le=1_000_000_000)] = 100_000_000
    min_side: Annotated[int, Field(ge=1, le=4096)] = 32
    bit_depth: Annotated[int, Field(ge=1, le=16)] | None = None
    mammography: MammographyConfig = MammographyConfig()
    patches: PatchConfig = PatchConfig()
    allow_unkeyed_groups: bool = False
    anonymise_paths: bool = False
    on_error: Literal["skip", "fail"] = "fail"
    workers: Annotated[int, Field(ge=1, le=64)] = 2

    @model_validator(mode="before")
    @classmethod
    def _no_salt(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "group_salt" in raw:
            raise ValueError("data.group_salt was removed: a salt in params is public (MLflow, "
                             "dvc.lock). Delete it and put a secret in the environment variable "
                             f"{GROUP_SECRET_ENV} (or a file outside the repository named by "
                             f"{GROUP_SECRET_FILE_ENV})")
        return raw

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
        if self.patches.enabled and self.patches.background_label not in self.classes:
            raise ValueError(f"patches.background_label {self.patches.background_label!r} is not "
                             f"in classes {list(self.classes)}")
        return self

    def to_class(self, source_label: str) -> str | None:
        """The configured class of a source label, or None when it maps to none."""
        if source_label in self.label_map:
            return self.label_map[source_label]
        return source_label if source_label in self.classes else None


class PhantomConfig(Section):
    """The built-in generator of breast images: ultrasound B-mode frames (``data/phantom.py``) or,
    with ``modality: mammography``, two-view mammograms (``data/phantom_mammo.py``).

    The scanner knobs (ultrasound) make a "second scanner" for an external test set: ``speckle_size``
    scales the point-spread function (coarser speckle above 1), ``gain_db`` shifts the overall gain
    and ``depth_db`` adds a gain ramp from skin (0) to the bottom of the image (this many dB).
    """

    patients_per_class: PositiveInt = 80
    max_images_per_patient: Annotated[int, Field(ge=1, le=8)] = 3
    render_size: Annotated[int, Field(ge=32, le=1024)] = 128
    seed: int = 7
    modality: Literal["ultrasound", "mammography"] = "ultrasound"
    speckle_size: Annotated[float, Field(gt=0.2, le=5.0)] = 1.0
    gain_db: Annotated[float, Field(ge=-30.0, le=30.0)] = 0.0
    depth_db: Annotated[float, Field(ge=-30.0, le=30.0)] = 0.0


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
    so ``max_black_fraction`` must leave room for it; a mammogram is mostly background even when
    cropped, so it is held to ``mammography_max_black_fraction`` instead (an empty film fails).
    """

    min_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.02
    black_level: Annotated[int, Field(ge=0, le=255)] = 5
    saturated_level: Annotated[int, Field(ge=0, le=255)] = 250
    max_black_fraction: Fraction = 0.9
    mammography_max_black_fraction: Fraction = 0.98
    max_saturated_fraction: Fraction = 0.1
    min_mask_coverage: Fraction = 0.001
    max_mask_coverage: Fraction = 0.7
    split_tolerance: Fraction = 0.05
    near_duplicate_bits: Annotated[int, Field(ge=0, le=32)] = 6
    near_duplicate_similarity: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.6
    max_listed_ids: Annotated[int, Field(ge=1, le=1000)] = 5


class PixelModelConfig(Section):
    """The ``pixel`` back end: a class-conditional UNet on 1-channel images, trained from scratch.

    ``attention`` says, per resolution level, whether the block has (cross-)attention; on a CPU,
    self-attention at high resolution is what costs, so the default keeps it at the lowest level.
    ``control_embedding_channels`` is the width of the ControlNet's control encoder; diffusers' encoder
    halves the resolution once per extra stage, and a pixel model's control already has the UNet's
    size, so it has a single stage here.
    """

    block_out_channels: tuple[PositiveInt, ...] = (16, 32, 64, 64)
    attention: tuple[bool, ...] = (False, False, False, True)
    layers_per_block: Annotated[int, Field(ge=1, le=4)] = 1
    cross_attention_dim: PositiveInt = 64
    attention_head_dim: PositiveInt = 8
    norm_num_groups: PositiveInt = 8
    control_embedding_channels: PositiveInt = 16

    @model_validator(mode="after")
    def _levels(self) -> PixelModelConfig:
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError("attention needs one entry per block_out_channels level")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError("every block_out_channels entry must be a multiple of norm_num_groups")
        return self


class LatentModelConfig(Section):
    """The ``latent`` back end: a pretrained Stable-Diffusion-style model, never downloaded.

    ``pretrained`` is a local folder in diffusers layout (vae/, text_encoder/, tokenizer/, unet/,
    scheduler/) or a repo id already in the user's Hugging Face cache. ``prompts`` gives each class
    its text; the null (unconditional) prompt is empty. ``lora_rank`` > 0 fine-tunes the UNet on
    the domain with LoRA in ``train_base``; 0 uses it as it is.
    """

    pretrained: str | None = None
    controlnet: str | None = None
    prompts: dict[str, str] = Field(default_factory=lambda: {
        "normal": "a breast ultrasound image of normal tissue",
        "benign": "a breast ultrasound image with a benign lesion",
        "malignant": "a breast ultrasound image with a malignant lesion"})
    lora_rank: Annotated[int, Field(ge=0, le=256)] = 8


class DiffusionConfig(Section):
    """What is shared by both back ends and both training stages: the noise process and its target.

    ``label_dropout`` replaces that fraction of labels by the null class so that one model learns
    both the conditional and the unconditional score (classifier-free guidance). ``snr_gamma``
    enables min-SNR loss weighting (Hang et al., 2023); null trains on the plain MSE.
    ``zero_terminal_snr`` rescales the pixel back end's betas so the last timestep is pure noise (Lin
    et al., 2024: the model then learns to start from what sampling starts from; the cosine schedule
    already ends at alpha_bar ~ 2e-9, a linear one at ~4e-5); it needs ``v_prediction``.
    ``control_dropout`` replaces that fraction of the ControlNet stage's controls by an all-zero
    control, so that control guidance has a learnt null (``sampling.control_null``).
    """

    backend: Literal["pixel", "latent"] = "pixel"
    prediction_type: Literal["epsilon", "v_prediction"] = "v_prediction"
    num_train_timesteps: Annotated[int, Field(ge=10, le=10000)] = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    snr_gamma: Annotated[float, Field(gt=0.0)] | None = None
    zero_terminal_snr: bool = False
    label_dropout: Fraction = 0.1
    control_dropout: Fraction = 0.0
    hflip: bool = True
    pixel: PixelModelConfig = PixelModelConfig()
    latent: LatentModelConfig = LatentModelConfig()

    @model_validator(mode="after")
    def _zero_snr_target(self) -> DiffusionConfig:
        if self.zero_terminal_snr and self.prediction_type != "v_prediction":
            raise ValueError("zero_terminal_snr needs prediction_type: v_prediction (at zero SNR the noise "
                             "is the input itself, so an epsilon target teaches nothing)")
        return self


class TrainConfig(Section):
    """One training stage (``train_base`` or ``train_controlnet``); steps count optimizer updates.

    Checkpoints go to ``<paths.checkpoints>/<stage>/checkpoint-<step>`` every ``checkpoint_every``
    steps, the last ``keep_checkpoints`` kept. Every ``validate_every`` steps a validation grid and
    (for the ControlNet) the control-fidelity figure are logged. The run stops with a clear error
    when the loss is not finite or exceeds ``divergence_factor`` times its running mean.
    """

    steps: PositiveInt = 300
    batch_size: PositiveInt = 16
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    lr_warmup_steps: Annotated[int, Field(ge=0)] = 20
    adam_weight_decay: Annotated[float, Field(ge=0.0)] = 1e-2
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    gradient_accumulation_steps: PositiveInt = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    ema_decay: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    checkpoint_every: PositiveInt = 100
    keep_checkpoints: PositiveInt = 2
    validate_every: PositiveInt = 100
    num_validation: Annotated[int, Field(ge=1, le=64)] = 6
    log_every: PositiveInt = 10
    divergence_factor: Annotated[float, Field(gt=1.0)] = 100.0
    threads: Annotated[int, Field(ge=0, le=256)] = 0


class SamplingConfig(Section):
    """How images are drawn: scheduler, steps, classifier-free guidance and ControlNet strength.

    ``controlnet_scale`` multiplies the ControlNet's residuals. ``control_guidance`` is guidance on
    the control alone: the prediction moves away from the base UNet's (no ControlNet) by this
    factor, as classifier-free guidance moves it away from the null class; 1 is off, and above 1
    costs one more copy of the batch per forward. ``control_null`` is what "without the control"
    means: ``base`` (the UNet alone) or ``empty`` (the ControlNet given an all-zero control, which it
    has learnt only when trained with ``diffusion.control_dropout`` > 0).
    """

    scheduler: Literal["ddim", "unipc", "dpmsolver++"] = "ddim"
    steps: Annotated[int, Field(ge=1, le=1000)] = 25
    guidance_scale: Annotated[float, Field(ge=1.0, le=30.0)] = 2.0
    controlnet_scale: Annotated[float, Field(ge=0.0, le=5.0)] = 1.0
    control_guidance: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    control_null: Literal["base", "empty"] = "base"
    batch_size: PositiveInt = 32


class VariationConfig(Section):
    """Random changes to each training control before it conditions a synthetic image (diversity).

    One affine warp (mirror with probability 0.5, rotation in degrees, scale and shift as fractions
    of the side) and an optional elastic warp (Gaussian-smoothed random displacements of std
    ``elastic_alpha`` pixels, smoothness ``elastic_sigma`` pixels; 0 turns it off). Each image's
    draw comes from its own seed and is stored in the manifest.
    """

    hflip: bool = True
    max_rotation: Annotated[float, Field(ge=0.0, le=45.0)] = 5.0
    max_scale: Annotated[float, Field(ge=0.0, le=0.3)] = 0.05
    max_shift: Annotated[float, Field(ge=0.0, le=0.3)] = 0.03
    elastic_alpha: Annotated[float, Field(ge=0.0, le=20.0)] = 0.0
    elastic_sigma: Annotated[float, Field(gt=0.0, le=50.0)] = 4.0


class GenerateConfig(Section):
    """``generate``: ``per_class`` synthetic images per class, each from a training-split control.

    ``auto`` makes what the classifier arms draw (``mixing.synthetic_needed``): the larger
    of the real training split's size and ``round(classifier.mix_ratio * n_real)``, shared across
    classes in the real training split's proportions (read from the prepared manifest).

    Image ``i`` of the set draws its noise and its control variation from seed ``seed * 1_000_000
    + i``; controls of a class are visited in a seeded order, all before any repeats. ``sampling``
    is the sampler of the set; null uses the ``sampling`` section (the training stages' validation
    sampler, which a few images can afford at more steps than a whole set can). The default, DDIM
    at 10 steps without classifier-free guidance and ControlNet residuals x2, is the measured
    choice params.yaml's comments give.

    ``strength`` s (real-guided generation, SDEdit / img2img): below 1 the sampler starts from the
    real training image whose control conditions the row, varied as that control was and noised to
    step s·T, and runs only the last ``round(s * steps)`` steps; 1 starts from pure noise (exactly
    the set drawn before this option existed).
    """

    per_class: PositiveInt | Literal["auto"] = "auto"
    seed: Annotated[int, Field(ge=0, le=2**31)] = 0
    strength: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    variation: VariationConfig = VariationConfig()
    sampling: SamplingConfig | None = SamplingConfig(steps=10, guidance_scale=1.0, controlnet_scale=2.0)


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


class AugmentConfig(Section):
    """Random changes to each training batch (real and synthetic alike; never to val or test).

    Shifts and scale are fractions of the image side, rotation is in degrees, ``intensity`` is the
    largest relative change of contrast and of brightness, ``noise`` the std of added Gaussian
    noise as a fraction of the intensity range.
    """

    hflip: bool = True
    max_shift: Annotated[float, Field(ge=0.0, le=0.5)] = 0.06
    max_rotation: Annotated[float, Field(ge=0.0, le=180.0)] = 10.0
    max_scale: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.15
    noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02


RECIPE_NAME = r"^[a-z][a-z0-9+_-]*$"


class RecipeConfig(Section):
    """A named arm beside the built-in ones (``mixing.Recipe``): which real and synthetic images it
    trains on and how. ``real``: ``once``, ``repeat`` (the real images drawn again up to the
    ``real+synthetic`` arm's count: the same-count control) or ``none``; ``synthetic``: ``none``,
    ``all`` or ``filtered`` (kept by the label-consistency filter, ``synthetic_filter``);
    ``schedule``: ``mixed``, or ``pretrain`` on the synthetic images then fine-tune on the real ones;
    ``mix_ratio``: this arm's synthetic images per real image (null: ``classifier.mix_ratio``).
    """

    real: Literal["once", "repeat", "none"] = "once"
    synthetic: Literal["none", "all", "filtered"] = "all"
    schedule: Literal["mixed", "pretrain"] = "mixed"
    augment: bool = True
    mix_ratio: Annotated[float, Field(gt=0.0, le=100.0)] | None = None

    @model_validator(mode="after")
    def _parts(self) -> RecipeConfig:
        if self.real == "repeat" and self.synthetic != "none":
            raise ValueError("real: repeat is the same-count control for synthetic images: use it with "
                             "synthetic: none")
        if self.schedule == "pretrain" and (self.synthetic == "none" or self.real == "none"):
            raise ValueError("schedule: pretrain needs synthetic images to pretrain on and real ones to "
                             "fine-tune on")
        if self.real == "none" and self.synthetic == "none":
            raise ValueError("a recipe with real: none and synthetic: none trains on nothing")
        return self


class ClassifierConfig(Section):
    """``train-classifier``: a timm backbone per arm and seed, chosen on the validation split.

    ``model`` is any timm name, built with ``in_chans=1`` and ``model_kwargs`` (the default narrows
    resnet10t to fit the CPU budget); ``pretrained`` is a local safetensors or PyTorch weights file,
    never a download. Arms: ``real``; ``real+synthetic`` adds ``round(mix_ratio * n_real)``
    synthetic images to the ``n_real`` real training images (drawn from ``paths.synthetic`` with
    each seed, without replacement);
    ``synthetic`` trains on as many synthetic images as the real training split has. Early stopping
    and the kept epoch follow the validation split's macro AUC (``patience`` epochs without gain).
    ``balance``: class ``weights`` in the loss, a balanced ``sampler``, or ``none``. ``threads``: torch
    CPU threads (0: torch's default); a model this small runs fastest on one, and far faster than on
    two when another process shares the cores. ``workers``: processes training a stage's seeds and
    arms side by side (the same models as one after another, in less time on several cores).

    ``synthetic_draw``: ``per_class`` draws ``round(ratio * n_c)`` synthetic images of each class c
    (the same synthetic:real ratio in every class, so the source is no shortcut to the class);
    ``pooled`` draws uniformly from the whole set. ``recipes``: named arms (``RecipeConfig``), each
    trained at every real fraction and compared with ``real`` on the same seeds and resamples;
    ``pretrain_epochs``: the synthetic phase of a ``schedule: pretrain`` recipe.

    ``real_fractions``: the data-efficiency curve. For each fraction below 1, the ``real`` and
    ``real+synthetic`` arms are trained again on a nested, group-aware, class-stratified subset of the
    real training split (``data.splits.nested_subsets`` with ``subset_seed``; the same subset for
    every arm and seed), ``real+synthetic`` drawing only synthetic images made from that subset's
    controls. Fraction 1 is the ordinary arms.
    """

    model: str = "resnet10t"
    model_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"channels": [16, 32, 64, 128], "stem_width": 8})
    pretrained: Path | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    mix_ratio: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    epochs: PositiveInt = 10
    patience: PositiveInt = 4
    batch_size: PositiveInt = 32
    learning_rate: Annotated[float, Field(gt=0.0)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4
    balance: Literal["weights", "sampler", "none"] = "weights"
    augment: AugmentConfig = AugmentConfig()
    threads: Annotated[int, Field(ge=0, le=256)] = 1
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    registry: bool = True
    real_fractions: tuple[float, ...] = (0.5, 1.0)
    subset_seed: int = 0
    synthetic_draw: Literal["per_class", "pooled"] = "per_class"
    pretrain_epochs: PositiveInt = 5
    recipes: dict[Annotated[str, Field(pattern=RECIPE_NAME)], RecipeConfig] = Field(default_factory=lambda: {
        "real-repeat": RecipeConfig(real="repeat", synthetic="none"),
        "real+filtered": RecipeConfig(synthetic="filtered"),
        "synthetic-then-real": RecipeConfig(schedule="pretrain")})

    @model_validator(mode="after")
    def _seeds(self) -> ClassifierConfig:
        clash = sorted(set(self.recipes) & {"real", "real-noaug", "real+synthetic", "synthetic"})
        if clash:
            raise ValueError(f"recipes {clash} would replace built-in arms: give them other names")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be one or more distinct integers")
        if any(not 0.0 < f <= 1.0 for f in self.real_fractions) or \
                len(set(self.real_fractions)) != len(self.real_fractions):
            raise ValueError("real_fractions must be distinct numbers in (0, 1], got "
                             f"{list(self.real_fractions)}")
        if self.model.lower().startswith(("hf-hub:", "hf_hub:")):
            raise ValueError(f"model {self.model!r} would be fetched from the Hugging Face Hub; give a timm "
                             "architecture name and a local `pretrained` weights file")
        return self


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
                    "strength": (0.01, 1.0)}


class TuneConfig(Section):
    """``tune``: Optuna searches ``generate.sampling.guidance_scale`` and ``classifier.mix_ratio``
    (and optionally ``controlnet_scale``, ``strength`` (real-guided generation, ``generate.strength``)
    and ``synthetic_count``, the per-class size of the trial's
    synthetic set; null: not searched) on the **validation** split.

    ``n_trials``: finished (complete or pruned) trials the study should hold; 0 turns tuning off and
    ``generate``/``train_classifiers`` keep params.yaml's values. Each trial draws ``per_class``
    images per class (unless ``synthetic_count`` is searched), trains ``real+synthetic`` with each of
    ``seeds`` and scores the mean validation macro AUC. ``storage``: any SQLAlchemy URL (SQLite by
    default, beside the repository in ``optuna/``, which DVC never deletes; ``postgresql://`` with
    its password in the environment, never in the URL) or ``grpc://HOST:PORT``
    (``controlbreast tune-server``). Heartbeats every ``heartbeat_interval`` s mark a trial whose
    worker died FAILED after ``grace_period`` s; ``retry_failed`` re-queues it that many times.
    ``threads``: torch CPU threads per worker (0: torch's default); one is several times faster
    than two for these small models when anything else shares the cores.
    """

    n_trials: Annotated[int, Field(ge=0, le=10_000)] = 6
    seeds: tuple[int, ...] = (0,)
    sampler_seed: int = 0
    pruner: Literal["median", "hyperband", "none"] = "median"
    storage: str = "sqlite:///optuna/tune.db"
    study_name: Annotated[str, Field(min_length=1, max_length=200)] = "controlbreast"
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    per_class: PositiveInt = 16
    guidance_scale: RangeConfig = RangeConfig(low=1.0, high=3.0, step=1.0)
    mix_ratio: RangeConfig = RangeConfig(low=0.03, high=0.15, log=True)
    controlnet_scale: RangeConfig | None = None
    synthetic_count: RangeConfig | None = None
    strength: RangeConfig | None = None
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


class TrackingConfig(Section):
    """MLflow: a SQLite store under ``paths.mlruns`` (or ``MLFLOW_TRACKING_URI``, which wins) and one
    experiment for the project."""

    experiment: str = "controlbreast"


class ReportConfig(Section):
    """``report``: the one-page HTML report and its Markdown twin.

    ``examples`` real training images per class are shown with their controls; ``mlflow_ui`` is the
    address the run links point at (``mlflow ui`` serves 127.0.0.1:5000 by default).
    """

    examples: Annotated[int, Field(ge=1, le=8)] = 2
    mlflow_ui: str = "http://127.0.0.1:5000"


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

    channels: Annotated[list[PositiveInt], Field(min_length=2, max_length=5)] = [16, 32, 64]
    steps: PositiveInt = 400
    batch_size: PositiveInt = 16
    learning_rate: Annotated[float, Field(gt=0.0)] = 3e-3
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    seed: int = 0


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
    train_controlnet: TrainConfig = TrainConfig()
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
