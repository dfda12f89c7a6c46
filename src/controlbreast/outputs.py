"""Writing stage outputs so that nothing half-written is ever left where DVC or a user looks.

A stage builds its output folder beside the destination and swaps it in only when complete (and
removes what a killed run left there); single files go through a temporary file and a rename.
Tables are CSV with a fixed column order and Unix newlines, so the same rows always give the same
bytes.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so a reader never sees it half-written (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build_prefix(destination: Path) -> str:
    """Name prefix of ``destination``'s build folders: ``.<name>.build-`` (then ``<pid>-<random>``)."""
    return f".{destination.name}.build-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_builds(destination: Path) -> list[Path]:
    """Delete build folders of ``destination`` whose owner process is dead; returns them.

    A run killed with SIGKILL (or a power cut) cannot clean up: its build folder is a half-written
    output of a dead run, never user state, so the next run removes it and says so.
    """
    removed = []
    prefix = build_prefix(destination)
    for folder in sorted(destination.parent.glob(f"{prefix}*")):
        owner = folder.name[len(prefix):].split("-", 1)[0]
        if folder.is_dir() and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        print(f"removed {len(removed)} half-written build folder(s) of a dead run: "
              + ", ".join(str(f) for f in removed), file=sys.stderr)
    return removed


@contextmanager
def atomic_folder(destination: Path) -> Iterator[Path]:
    """Yield an empty build folder; on success it replaces ``destination``, on error it vanishes.

    The previous ``destination`` stays in place until the new one is complete. The build folder is
    ``.<name>.build-<pid>-<random>`` beside it, so a later run can tell a dead run's leftovers
    (``remove_stale_builds``) from a live concurrent one.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(destination)
    prefix = f"{build_prefix(destination)}{os.getpid()}-"
    build = Path(tempfile.mkdtemp(dir=destination.parent, prefix=prefix))
    try:
        yield build
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    stale = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(stale, ignore_errors=True)
    if destination.exists():
        destination.rename(stale)
    build.rename(destination)
    shutil.rmtree(stale, ignore_errors=True)


def csv_bytes(rows: Iterable[dict], columns: Iterable[str]) -> bytes:
    """Rows as CSV bytes with a fixed column order and Unix newlines (deterministic)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def read_csv(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV table as string dictionaries."""
    with Path(path).open(newline="") as stream:
        return list(csv.DictReader(stream))
