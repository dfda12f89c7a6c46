"""One tiny reproduced project for the end-to-end tests (pipeline, retraining): this project's
code, dvc.yaml and scripts as a fresh git + DVC repository on CI's overlay, ``dvc repro`` run once.
Each test module works on its own copy, so the ~3 minutes of the tiny repro are paid once."""

from __future__ import annotations

import shutil
from pathlib import Path

from commands import run

REPO = Path(__file__).resolve().parents[1]


def reproduced_project(root: Path) -> Path:
    """``root`` as a git (branch main, nothing committed) + DVC repository with the tiny run done:
    outputs, dvc.lock, metrics, the DVC cache and one MLflow run per stage in ``mlruns/``."""
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("scripts", "ci"):
        shutil.copytree(REPO / name, root / name)
    for name in ("dvc.yaml", ".gitignore", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    run("controlbreast", "overlay", str(REPO / "ci" / "params-tiny.yaml"), cwd=root)  # CI's tiny run
    run("git", "init", "-q", "-b", "main", cwd=root)
    run("git", "config", "user.email", "ci@example.org", cwd=root)
    run("git", "config", "user.name", "CI", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots", dirs_exist_ok=True)  # plot templates
    run("dvc", "repro", cwd=root)
    return root


def copy_project(source: Path, destination: Path) -> Path:
    """A copy of ``source`` as a user's moved checkout: files, git, DVC cache and MLflow store
    (whose artifact location stays ``source``'s, as MLflow records it absolute), DVC's
    machine-local state left behind."""
    def local_state(folder: str, names: list[str]) -> list[str]:
        return ["tmp"] if Path(folder).name == ".dvc" else []

    shutil.copytree(source, destination, symlinks=True, ignore=local_state)
    return destination
