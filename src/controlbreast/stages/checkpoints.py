"""``controlbreast checkpoints list|prune``: training state is the user's; it goes only when asked."""

from __future__ import annotations

from pathlib import Path

from controlbreast.config import load_config
from controlbreast.diffusion.checkpoints import describe, prunable, remove, stored_runs


def list_runs(params: Path) -> None:
    """Print every configuration's checkpoints: stage, fingerprint, steps, size, age, folder."""
    root = Path(load_config(params).paths.checkpoints)
    runs = stored_runs(root)
    if not runs:
        print(f"no checkpoints under {root}")
    for run in runs:
        print(describe(run))


def prune(params: Path, fingerprints: tuple[str, ...], keep_latest: bool, yes: bool) -> None:
    """Remove the named configurations' checkpoints (default: all but each stage's newest).

    Without ``yes`` it only prints what it would remove.
    """
    chosen = prunable(stored_runs(Path(load_config(params).paths.checkpoints)), fingerprints, keep_latest)
    if not chosen:
        print("nothing to prune")
        return
    for run in chosen:
        print(("removing " if yes else "would remove ") + describe(run))
    if yes:
        remove(chosen, log=lambda line: None)
    else:
        print("(dry run: add --yes to remove them)")
