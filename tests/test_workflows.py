"""The GitHub workflows are valid (actionlint) and safe (zizmor: pinned actions, least privilege,
no template injection, no persisted credentials without reason): any finding fails, so a broken
or unsafe workflow cannot land. Both linters are pinned in requirements.txt."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"


def linter(name: str) -> str:
    """The linter installed beside this Python (the venv), else on the PATH."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -r requirements.txt")
    return path


def check(*command: str) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"


def test_there_are_the_ci_and_retrain_workflows():
    assert {path.name for path in WORKFLOWS.glob("*.yml")} >= {"ci.yml", "retrain.yml"}


def test_actionlint_finds_nothing():
    workflows = sorted(str(path) for path in WORKFLOWS.glob("*.y*ml"))
    check(linter("actionlint"), "-no-color", "-config-file", str(REPO / ".github" / "actionlint.yaml"),
          *workflows)


def test_zizmor_finds_nothing():
    check(linter("zizmor"), "--offline", "--no-progress", "--persona=pedantic", str(REPO / ".github"))


def test_every_action_is_pinned_to_a_commit():
    uses = [line.split("uses:", 1)[1].split("#")[0].strip()
            for path in (REPO / ".github").rglob("*.yml") for line in path.read_text().splitlines()
            if "uses:" in line]
    remote = [use for use in uses if not use.startswith("./")]
    assert remote and all(len(use.rsplit("@", 1)[1]) == 40 for use in remote), remote
