"""Content digests: what identifies a saved model, a data set or a configuration, whatever its path."""

from __future__ import annotations

import hashlib
from pathlib import Path


def folder_digest(folder: Path, pattern: str = "*") -> str:
    """Hash of every file's relative path and bytes under ``folder`` (identifies a saved model)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob(pattern) if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
