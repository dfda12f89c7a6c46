"""What a data source hands to ingest: lazily loadable candidates and the samples they load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawSample:
    """One image as a source read it, before resizing.

    ``image`` is (H, W) uint8 or uint16 grayscale at the source's own depth (ingest scales it to
    8 bits after resizing, see ``imageio.to_uint8``); ``mask`` is (H, W) bool of the same size, or None when
    the source has no mask for it. ``sha256`` fingerprints the source bytes (the image file, or the
    generated pixels for the phantom) so the manifest records exactly what was read. ``group`` is a
    group found inside the file (a salted hash of a DICOM PatientID), never a raw identifier.
    ``scale_bits`` is the depth ``image`` is scaled by when it differs from ``bit_depth`` (16 for a
    DICOM, whose window output is spread over 16 bits), None otherwise. ``modality`` (DICOM
    Modality, e.g. ``MG``), ``laterality`` (``L``/``R``) and ``spacing_mm`` are None when unknown.
    """

    image: np.ndarray
    mask: np.ndarray | None
    sha256: str
    bit_depth: int = 8
    group: str | None = None
    scale_bits: int | None = None
    modality: str | None = None
    laterality: str | None = None
    spacing_mm: float | None = None


@dataclass(frozen=True)
class Candidate:
    """An input found by a source, loaded later (in a worker process, so ``load`` must pickle).

    ``source_path`` is POSIX and relative to the data root; ``group`` is the patient or study the
    source knows it belongs to (None when it knows none); ``load`` raises ``SampleError``.
    What the listing already tells, for ``data/check.py`` (None: known only once loaded):
    ``has_mask`` whether a mask file is named, ``spacing_mm`` the pixel spacing the listing gives.
    """

    source_path: str
    source_label: str
    group: str | None
    load: Callable[[], RawSample]
    has_mask: bool | None = None
    spacing_mm: float | None = None


REASONS = ("bad_input", "excluded_label", "duplicate", "label_conflict", "near_duplicate_conflict")


@dataclass(frozen=True)
class Rejection:
    """An input left out of the prepared set, as listed in ``rejected.csv``.

    ``reason`` is one of ``REASONS``: a ``bad_input`` fails the run unless ``data.on_error`` is
    skip; the others are left out on purpose (a label mapped to no class, a repeated copy, copies
    whose labels disagree) and never fail it.
    """

    source_path: str
    problem: str
    reason: str = "bad_input"

    def __str__(self) -> str:
        return f"{self.source_path}: {self.problem}"
