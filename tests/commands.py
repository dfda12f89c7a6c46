"""Running the project's commands in a child process, as a user's shell would, for the end-to-end
tests (pipeline, retraining, versions)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*command: str, cwd: Path, env: dict | None = None) -> str:
    """stdout of ``command`` with this venv's tools first on the PATH; fails the test on an error."""
    base = {**os.environ, **(env or {})}
    result = subprocess.run(command, cwd=cwd, env={**base, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path → its SHA-256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
