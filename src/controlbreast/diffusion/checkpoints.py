"""Training checkpoints: written atomically every N steps, the last K kept, resumed exactly.

Layout (``<paths.checkpoints>/<stage>/checkpoint-<step>/``)::

    <part>/          each trained part in diffusers' save_pretrained layout (safetensors)
    optimizer.pt     optimizer state (tensors and numbers only: read with weights_only=True)
    lr_scheduler.pt  learning-rate scheduler state
    ema.pt           EMA shadow weights, when EMA is on
    state.json       {"step", "fingerprint", "loss_mean"}

A checkpoint is built in a hidden folder and renamed into place, so a run killed while saving
leaves the previous checkpoint intact. ``fingerprint`` identifies the configuration and data; a
checkpoint from another configuration is never resumed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from controlbreast.outputs import atomic_folder

PREFIX = "checkpoint-"


@dataclass(frozen=True)
class Resumable:
    """Where a resumed run starts: the checkpoint folder, its step and its running loss mean."""

    folder: Path
    step: int
    loss_mean: float


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not Path(root).is_dir():
        return []
    found = [p for p in Path(root).glob(f"{PREFIX}*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def save_checkpoint(root: Path, step: int, save_parts: Callable[[Path], None],
                    states: dict[str, dict], fingerprint: str, loss_mean: float, keep: int) -> Path:
    """Write checkpoint ``step`` (parts, optimizer-like ``states``, state.json); prune to ``keep``."""
    destination = Path(root) / f"{PREFIX}{step:06d}"
    with atomic_folder(destination) as build:
        save_parts(build)
        for name, state in states.items():
            torch.save(state, build / f"{name}.pt")
        (build / "state.json").write_text(json.dumps(
            {"step": step, "fingerprint": fingerprint, "loss_mean": loss_mean}) + "\n")
    for stale in checkpoints(root)[:-keep]:
        shutil.rmtree(stale)
    return destination


def latest(root: Path, fingerprint: str) -> Resumable | None:
    """The newest checkpoint of this configuration, or None.

    Checkpoints of another configuration cannot be continued; they are removed so that they are
    never mistaken for this run's later on.
    """
    found = checkpoints(root)
    for folder in reversed(found):
        state = json.loads((folder / "state.json").read_text())
        if state["fingerprint"] == fingerprint:
            return Resumable(folder, int(state["step"]), float(state["loss_mean"]))
    for folder in found:
        shutil.rmtree(folder)
    return None


def load_state(folder: Path, name: str) -> dict | None:
    """A saved optimizer-like state (safe load: tensors and plain values only), or None."""
    path = Path(folder) / f"{name}.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None
