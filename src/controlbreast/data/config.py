"""The ``data`` and ``phantom`` sections of ``params.yaml``, beside ingest and the phantom, which read
them (and the group-secret variables, named in ``data``'s errors and read by ``privacy.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from controlbreast.sections import Fraction, PositiveInt, Section

THREE_CLASSES = ("normal", "benign", "malignant")
GROUP_SECRET_ENV = "CONTROLBREAST_GROUP_SECRET"
GROUP_SECRET_FILE_ENV = "CONTROLBREAST_GROUP_SECRET_FILE"


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
    ``image_size * mm_per_px`` mm, which needs every image's pixel spacing (an image without one is
    a bad input, never sized another way); with ``mm_per_px`` null, ``breast_fraction`` of the
    breast's width instead.
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
    the file's own declaration (PNG sBIT, else 16), never an image's own maximum; a 16-bit raster
    whose values fill under a quarter of that range is warned about at ingest, naming the file.
    ``intensity``: ``depth`` maps each image by that depth (one grey level per raw value across a
    scanner's films); ``percentile`` stretches each image between its own
    ``intensity_percentiles`` (low, high), whatever its depth, DICOM included.
    ``pixel_spacing_mm`` is the spacing of images that state none (a CSV ``pixel_spacing_mm``
    column, else DICOM PixelSpacing / ImagerPixelSpacing, wins); null: unknown. Near-duplicates
    are hash pairs within ``near_duplicate_bits`` whose pixels also correlate at least
    ``near_duplicate_similarity`` (``splits.similarity``), or
    ``near_duplicate_similarity_across_patients`` when the source gives both images patients and
    they differ (different women's films scored up to 0.76 on a public set of 318 PNG films; the
    threshold is set above that, not yet calibrated on more real films);
    they join groups only by complete linkage (``splits.linked_groups``). Conflicting labels
    dropping more than ``near_duplicate_max_drop`` of the images stop ingest instead.
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
    near_duplicate_similarity_across_patients: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.9
    near_duplicate_max_drop: Fraction = 0.05
    near_duplicate_conflicts: Literal["drop", "keep", "fail"] = "drop"
    require_lesion_masks: bool = True
    max_pixels: Annotated[int, Field(ge=1024, le=1_000_000_000)] = 100_000_000
    min_side: Annotated[int, Field(ge=1, le=4096)] = 32
    bit_depth: Annotated[int, Field(ge=1, le=16)] | None = None
    intensity: Literal["depth", "percentile"] = "depth"
    intensity_percentiles: tuple[Annotated[float, Field(ge=0.0, le=100.0)],
                                 Annotated[float, Field(ge=0.0, le=100.0)]] = (0.5, 99.5)
    pixel_spacing_mm: Annotated[float, Field(gt=0.0, le=5.0)] | None = None
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
        if self.intensity_percentiles[0] >= self.intensity_percentiles[1]:
            raise ValueError(f"intensity_percentiles must be (low, high) with low < high, got "
                             f"{list(self.intensity_percentiles)}; e.g. [0.5, 99.5]")
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
