"""What a data source hands to ingest: lazily loadable candidates and the samples they load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawSample:
    """One image as a source read it, before resizing.

    ``image`` is (H, W) uint8 grayscale; ``mask`` is (H, W) bool of the same size, or None when
    the source has no mask for it. ``sha256`` fingerprints the source bytes (the image file, or the
    generated pixels for the phantom) so the manifest records exactly what was read. ``group`` is a
    group found inside the file (a salted hash of a DICOM PatientID), never a raw identifier.
    """

    image: np.ndarray
    mask: np.ndarray | None
    sha256: str
    bit_depth: int = 8
    group: str | None = None


@dataclass(frozen=True)
class Candidate:
    """An input found by a source, loaded later (in a worker process, so ``load`` must pickle).

    ``source_path`` is POSIX and relative to the data root; ``group`` is the patient or study the
    source knows it belongs to (None when it knows none); ``load`` raises ``SampleError``.
    """

    source_path: str
    source_label: str
    group: str | None
    load: Callable[[], RawSample]
