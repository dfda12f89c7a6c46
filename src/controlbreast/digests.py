"""Content digests: what identifies a saved model, a data set or a configuration, whatever its path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def folder_digest(folder: Path, pattern: str = "*") -> str:
    """Hash of every file's relative path and bytes under ``folder`` (identifies a saved model)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob(pattern) if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    """Hash of an array's shape, dtype and values (identifies training data by its pixels, not ids)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}|{array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]
