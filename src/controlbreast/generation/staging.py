"""Sharded, streaming, resumable generation: the plan fixed up front, cut into chunks, each chunk a
finished folder once it exists.

A set of 16,000 images is an hour on a CPU and cannot be held in memory; it must survive a kill and
split across processes or GPUs. The plan (every row: control, seed, variation, sampler, model hash)
is made first and digested; its rows are cut into chunks of one sampling batch each, and chunk ``k``
is always the same rows drawn in the same batch, so which process draws it, and when, does not change
a byte. Staging lives beside the destination::

    .<name>.parts-<digest>/
        plan.csv                   the plan (SyntheticRow), for whoever looks
        chunk-000000/              a mini set (images/, controls/<c>/, manifest.csv), swapped in whole
        ...

A chunk folder appears only complete (``outputs.atomic_folder``), so a run killed with SIGKILL and
started again skips the chunks that exist and redraws only the one it was in. Shard ``i/n`` draws
chunks ``i, i + n, ...``. Whoever finds every chunk present assembles the set (hard links, then the
manifest) and swaps it in atomically, under a lock so that two shards finishing together assemble
once. Staging of another plan (changed params or models) is never reused and never silently deleted:
it is listed with the command that removes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controlbreast.data.manifest import SyntheticRow, manifest_bytes
from controlbreast.errors import ConfigError
from controlbreast.outputs import atomic_folder, write_atomic

PARTS = ".parts-"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``); ``Shard(0, 1)`` is the whole set."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` as given to ``controlbreast generate --shard``."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
        return cls(index, count)

    @classmethod
    def from_environment(cls) -> Shard:
        """This process's shard under ``accelerate launch`` or ``torchrun`` (``RANK`` of
        ``WORLD_SIZE`` processes, one per GPU), else the whole set."""
        count = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), count) if count > 1 else cls()

    def chunks(self, total: int) -> range:
        """The chunk indices of this shard among ``total``: every ``count``-th from ``index``."""
        return range(self.index, total, self.count)


def plan_digest(rows: Sequence[dict], channels: Sequence[str], chunk_size: int) -> str:
    """16 hex digits identifying the plan's rows (with their model hash), controls and chunking."""
    head = f"{list(channels)}|{chunk_size}|".encode()
    return hashlib.sha256(head + manifest_bytes(rows, SyntheticRow)).hexdigest()[:16]


def staging_folder(destination: Path, digest: str) -> Path:
    return Path(destination).parent / f".{Path(destination).name}{PARTS}{digest}"


def chunk_rows(rows: Sequence[dict], chunk_size: int) -> list[Sequence[dict]]:
    """The plan cut into consecutive chunks of ``chunk_size`` rows (the last may be shorter)."""
    return [rows[start:start + chunk_size] for start in range(0, len(rows), chunk_size)]


def chunk_folder(staging: Path, index: int) -> Path:
    return staging / f"chunk-{index:06d}"


def done_chunks(staging: Path, total: int) -> set[int]:
    """Indices of the chunks already complete in ``staging``."""
    return {k for k in range(total) if (chunk_folder(staging, k) / "manifest.csv").is_file()}


def stale_staging(destination: Path, digest: str) -> list[Path]:
    """Staging folders of ``destination`` left by other plans (not ``digest``)."""
    destination = Path(destination)
    pattern = f".{destination.name}{PARTS}*"
    return sorted(p for p in destination.parent.glob(pattern)
                  if p.is_dir() and p.name.split(PARTS)[-1] != digest)


def describe_stale(folders: Sequence[Path]) -> str:
    """What stale staging holds, and how to remove it (left to the user: it may be another live run)."""
    lines = [f"generate: {len(folders)} staging folder(s) of another generation plan (changed params or "
             "models), not used and not deleted:"]
    for folder in folders:
        chunks = len(list(folder.glob("chunk-*/manifest.csv")))
        lines.append(f"  {folder}  ({chunks} finished chunk(s))")
    lines.append("  remove with: rm -rf " + " ".join(str(f) for f in folders))
    return "\n".join(lines)


def start_staging(staging: Path, rows: Sequence[dict]) -> None:
    """Create ``staging`` with its ``plan.csv`` (kept if already there: the digest names the plan)."""
    staging.mkdir(parents=True, exist_ok=True)
    if not (staging / "plan.csv").is_file():
        write_atomic(staging / "plan.csv", manifest_bytes(rows, SyntheticRow))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def assemble(destination: Path, staging: Path, rows: Sequence[dict], channels: Sequence[str],
             chunk_size: int) -> bool:
    """Swap the complete set into ``destination`` and remove ``staging``; False if another process
    holds the assembly lock or already did it, or a chunk is missing."""
    total = len(chunk_rows(rows, chunk_size))
    try:
        lock = os.open(staging / "assemble.lock", os.O_CREAT | os.O_RDWR)
    except FileNotFoundError:  # assembled and removed by another shard
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return False
    try:
        if not staging.is_dir() or len(done_chunks(staging, total)) < total:
            return False
        _build_set(destination, staging, rows, channels, total)
        shutil.rmtree(staging)
        return True
    finally:
        os.close(lock)


def _build_set(destination: Path, staging: Path, rows: Sequence[dict], channels: Sequence[str],
               total: int) -> None:
    with atomic_folder(destination) as build:
        parts = ("images", *(f"controls/{c}" for c in channels))
        for name in parts:
            (build / name).mkdir(parents=True)
        for k in range(total):
            chunk = chunk_folder(staging, k)
            for name in parts:
                for path in sorted((chunk / name).iterdir()):
                    _link_or_copy(path, build / name / path.name)
        (build / "manifest.csv").write_bytes(manifest_bytes(rows, SyntheticRow))
