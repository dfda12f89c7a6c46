"""The tables stages hand to each other, one schema and one reader each.

``PreparedRow`` (``<paths.prepared>/manifest.csv``, written by ingest), ``ControlRow``
(``<paths.controls>/controls.csv``) and ``SyntheticRow`` (``<paths.synthetic>/manifest.csv``).
Every reader goes through ``read_manifest``, so a value is typed once (``has_mask`` is a bool, a seed
an int) and a table that breaks its schema stops with the file, the line and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from controlbreast.errors import ManifestError, MissingInputError
from controlbreast.outputs import csv_bytes

Split = Literal["train", "val", "test"]


class ManifestRow(BaseModel):
    """One row; the field order is the column order of the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


class PreparedRow(ManifestRow):
    """A prepared image: ``images/<id>.png`` (and ``masks/<id>.png`` when ``has_mask``).

    The image is a whole source image (``patch_kind`` ``image``) or a patch of one
    (``lesion``/``background``, see ``data/patches.py``); ``source_image`` is the id of the source
    image (its own id for a whole image), so patch scores can be pooled per image. A mammogram was
    cut from its film at ``crop_*`` (source pixels) and mirrored when ``flipped``; a patch is the
    square (``patch_top``, ``patch_left``, ``patch_side``) of that oriented crop (0 for a whole
    image). ``laterality`` is ``L``/``R`` ("" for ultrasound); ``pixel_spacing_mm`` of the source
    is 0.0 when unknown. ``sha256``, ``phash`` and the ``orig_*`` sizes describe the source image.
    """

    id: str
    label: str
    source_label: str
    split: Split
    group: str
    source_path: str
    orig_height: int
    orig_width: int
    bit_depth: int
    has_mask: bool
    sha256: str
    phash: str
    source_image: str
    patch_kind: Literal["image", "lesion", "background"]
    patch_top: int
    patch_left: int
    patch_side: int
    modality: Literal["ultrasound", "mammography"]
    laterality: Literal["", "L", "R"]
    flipped: bool
    crop_top: int
    crop_left: int
    crop_height: int
    crop_width: int
    pixel_spacing_mm: float


class ControlRow(ManifestRow):
    """The controls of one prepared image: ``<channel>/<id>.png`` for each of ``channels``."""

    id: str
    label: str
    split: Split
    channels: str


class SyntheticRow(ManifestRow):
    """A synthetic image with its provenance: the training control it came from and how it was drawn."""

    id: str
    label: str
    control_id: str
    control_split: Split
    seed: int
    variation: str
    guidance_scale: float
    controlnet_scale: float
    control_guidance: float = 1.0  # absent from sets made before control guidance existed
    control_null: str = "base"     # ...or before its null could be an empty control
    steps: int
    scheduler: str
    model_hash: str
    strength: float = 1.0          # absent from sets made before real-guided generation existed


class FilterRow(ManifestRow):
    """The label-consistency filter's verdict on one synthetic image (``<paths.synthetic_filter>/
    verdicts.csv``): the filter classifier's probability of the intended class, the nearest
    training image's feature cosine and SSIM, and whether the image is kept."""

    id: str
    label: str
    probability: float
    copy_cosine: float
    copy_ssim: float
    likely_copy: bool
    kept: bool


Row = TypeVar("Row", bound=ManifestRow)


def _describe(error: ValidationError, path: Path, line: int) -> str:
    item = error.errors()[0]
    column = ".".join(str(part) for part in item["loc"])
    return f"{path}, line {line}, column {column!r}: {item['msg']} (got {item.get('input')!r})"


def existing_manifest(path: Path) -> Path:
    """``path``, or ``MissingInputError`` when no stage has written it: every manifest reader's
    first check, one message for all."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no manifest (run the stage that writes it first)")
    return path


def read_manifest(path: Path, schema: type[Row]) -> list[Row]:
    """Every row of ``path`` as ``schema``; raises ``ManifestError`` naming file, line and column.
    A column with a default in the schema may be absent (a table written before it existed)."""
    path = existing_manifest(path)
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        columns = tuple(reader.fieldnames or ())
        missing = [c for c in schema.columns() if c not in columns and schema.model_fields[c].is_required()]
        unknown = [c for c in columns if c not in schema.columns()]
        if missing or unknown:
            raise ManifestError(f"{path}: not a {schema.__name__} table: missing columns {missing}, "
                                f"unknown columns {unknown}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            try:
                rows.append(schema.model_validate(raw))
            except ValidationError as error:
                raise ManifestError(_describe(error, path, line)) from None
    return rows


def manifest_bytes(rows: Iterable[ManifestRow | dict], schema: type[ManifestRow]) -> bytes:
    """``rows`` (typed, or dicts checked against ``schema``) as CSV bytes in the schema's column order."""
    checked = [row if isinstance(row, schema) else schema.model_validate(row) for row in rows]
    return csv_bytes((dict(row) for row in checked), schema.columns())
