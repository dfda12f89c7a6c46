"""Resumable training state, one folder per configuration, never deleted behind the user's back.

Layout (``<paths.checkpoints>/<stage>/<fingerprint>/``)::

    run.json                   what the fingerprint stands for (stage, sections, data digest)
    checkpoint-<step>/         accelerate's ``save_state``: optimizer.bin, scaler.pt (fp16),
                               random_states_<rank>.pkl; the trained parts in diffusers'
                               ``save_pretrained`` layout (safetensors); lr_scheduler.pt, ema.pt;
                               state.json {"step", "loss_mean", "code"}

The fingerprint hashes what gives the run its meaning (config sections, the training data's pixels
and controls, the model it starts from), not the source code's bytes: a comment edit must not cost a
multi-hour run its progress. Resuming across a code change is allowed and reported. ``steps`` is not
part of it either, so raising ``steps`` continues a finished run. Within one configuration the
newest ``keep`` checkpoints are kept (the total limit); another configuration's folder is only
listed (``controlbreast checkpoints list``) and removed on request (``controlbreast checkpoints
prune``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from controlbreast.errors import CheckpointError

PREFIX = "checkpoint-"
RUN_FILE = "run.json"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Resumable:
    """Where a resumed run starts: the checkpoint folder, its step, loss mean and code digest."""

    folder: Path
    step: int
    loss_mean: float
    code: str


@dataclass(frozen=True)
class StoredRun:
    """One configuration's checkpoints on disk, as ``checkpoints list`` shows them."""

    stage: str
    fingerprint: str
    folder: Path
    steps: tuple[int, ...]
    bytes: int
    modified: float
    description: dict


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in one configuration's ``folder``, oldest first."""
    if not Path(folder).is_dir():
        return []
    found = [p for p in Path(folder).glob(f"{PREFIX}*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def run_folder(root: Path, fingerprint: str, description: dict) -> Path:
    """This configuration's folder under a stage's ``root``, with ``run.json`` describing it."""
    folder = Path(root) / fingerprint
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / RUN_FILE).is_file():
        (folder / RUN_FILE).write_text(json.dumps(description, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def latest(folder: Path) -> Resumable | None:
    """The newest checkpoint of this configuration, or None."""
    found = checkpoints(folder)
    if not found:
        return None
    state = json.loads((found[-1] / STATE_FILE).read_text())
    return Resumable(found[-1], int(state["step"]), float(state["loss_mean"]), state.get("code", ""))


def save(accelerator, folder: Path, step: int, state: dict, keep: int) -> Path:
    """``accelerator.save_state`` into ``folder/checkpoint-<step>`` (all processes call this; only
    the main one writes: weights, optimizer and schedule are the same in every process, and no step
    reads the global random state, whose per-process files are therefore not needed on resume).

    The state is written to a hidden partial folder and renamed when complete, so a run killed while
    saving keeps its previous checkpoint; the oldest beyond ``keep`` are then removed.
    """
    destination = Path(folder) / f"{PREFIX}{step:06d}"
    partial = Path(folder) / f".{destination.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        accelerator.save_state(str(partial))
        (partial / STATE_FILE).write_text(json.dumps({"step": step, **state}) + "\n")
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(partial, destination)
        for stale in checkpoints(folder)[:-keep]:
            shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    return destination


def save_tensors(path: Path, state: dict) -> None:
    """An optimizer-like state (tensors and plain values) beside accelerate's files."""
    torch.save(state, path)


def load_tensors(path: Path) -> dict:
    """Read what ``save_tensors`` wrote, safely: tensors and plain values only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def stored_runs(root: Path) -> list[StoredRun]:
    """Every configuration's checkpoints under ``<paths.checkpoints>`` (all stages), oldest first."""
    runs = []
    for folder in sorted(p for p in Path(root).glob("*/*") if p.is_dir()):
        files = [p for p in folder.rglob("*") if p.is_file()]
        description = (json.loads((folder / RUN_FILE).read_text()) if (folder / RUN_FILE).is_file()
                       else {"note": "no run.json: written by an older version"})
        runs.append(StoredRun(folder.parent.name, folder.name, folder,
                              tuple(int(p.name.removeprefix(PREFIX)) for p in checkpoints(folder)),
                              sum(p.stat().st_size for p in files),
                              max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime),
                              description))
    return sorted(runs, key=lambda run: run.modified)


def prunable(runs: list[StoredRun], fingerprints: tuple[str, ...] = (),
             keep_latest: bool = True) -> list[StoredRun]:
    """The runs a prune removes: those named (``fingerprints``), else all but each stage's newest."""
    if fingerprints:
        unknown = set(fingerprints) - {run.fingerprint for run in runs}
        if unknown:
            raise CheckpointError(f"no checkpoints with fingerprint {sorted(unknown)} "
                                  "(see `controlbreast checkpoints list`)")
        return [run for run in runs if run.fingerprint in fingerprints]
    newest = {run.stage: run for run in runs}  # runs are sorted oldest first
    return [run for run in runs if not keep_latest or newest[run.stage] is not run]


def describe(run: StoredRun) -> str:
    """One line of ``checkpoints list``."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified))
    steps = ",".join(map(str, run.steps)) or "none"
    return (f"{run.stage:<17} {run.fingerprint:<17} steps {steps:<12} {run.bytes / 2**20:8.1f} MiB  "
            f"{when}  {run.folder}")


def remove(runs: list[StoredRun], log: Callable[[str], None] = print) -> None:
    """Delete the listed runs' folders (what the user asked ``prune --yes`` to remove)."""
    for run in runs:
        shutil.rmtree(run.folder)
        log(f"removed {run.folder}")
