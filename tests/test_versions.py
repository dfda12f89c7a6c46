"""``controlbreast pull``: any artifact or data set as a git revision of the project had it, fetched
from a real git + DVC repository with a local remote."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from commands import run
from controlbreast.errors import PullError
from controlbreast.versions import pull
from test_tracking import python_env


def save_version(repo: Path, weights: bytes, images: bytes, message: str) -> None:
    """Write the model and data bytes, track them with DVC, commit, push to the remote."""
    (repo / "models" / "classifiers" / "real" / "seed-0").mkdir(parents=True, exist_ok=True)
    (repo / "models" / "classifiers" / "real" / "seed-0" / "model.safetensors").write_bytes(weights)
    (repo / "data" / "prepared").mkdir(parents=True, exist_ok=True)
    (repo / "data" / "prepared" / "img.png").write_bytes(images)
    run("dvc", "add", "-q", "models/classifiers/real", "data/prepared", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", message, cwd=repo)
    run("dvc", "push", "-q", cwd=repo)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two commits (tagged v1, v2) whose classifier and data bytes differ, both pushed."""
    repo = tmp_path_factory.mktemp("versions") / "project"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo)
    run("git", "config", "user.email", "ci@example.org", cwd=repo)
    run("git", "config", "user.name", "CI", cwd=repo)
    run("dvc", "init", "-q", cwd=repo)
    run("dvc", "remote", "add", "-d", "local", str(repo.parent / "remote"), cwd=repo)
    artifacts = {"classifier-real": {"path": "models/classifiers/real", "type": "model"}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"artifacts": artifacts}))
    (repo / "params.yaml").write_text(yaml.safe_dump({"paths": {"prepared": "data/prepared"}}))
    save_version(repo, b"weights one", b"images one", "v1")
    run("git", "tag", "v1", cwd=repo)
    save_version(repo, b"weights two", b"images two", "v2")
    run("git", "tag", "v2", cwd=repo)
    run("rm", "-rf", ".dvc/cache", cwd=repo)  # what comes back comes from the remote
    return repo


@pytest.mark.parametrize("rev, expected", [("v1", b"weights one"), ("v2", b"weights two"),
                                           ("HEAD~1", b"weights one")])
def test_each_revision_gives_its_own_model_bytes(project, tmp_path, rev, expected):
    out = pull("classifier-real", rev, tmp_path / "model", repo=str(project))
    assert (out / "seed-0" / "model.safetensors").read_bytes() == expected


def test_the_command_pulls_a_data_set_by_its_params_path(project, tmp_path):
    command = [sys.executable, "-m", "controlbreast", "pull", "data", "--rev", "v1", "-o",
               str(tmp_path / "data"), "--repo", str(project)]
    result = subprocess.run(command, env=python_env(), capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "img.png").read_bytes() == b"images one"


def test_an_unknown_name_lists_the_known_ones(project, tmp_path):
    with pytest.raises(PullError, match="known: classifier-real, controls, data"):
        pull("classifier-fancy", "v2", tmp_path / "x", repo=str(project))


def test_an_existing_folder_is_not_overwritten(project, tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(PullError, match="already exists"):
        pull("classifier-real", "v1", tmp_path / "model", repo=str(project))


def test_an_unknown_revision_is_an_expected_failure(project, tmp_path):
    with pytest.raises(PullError, match="no-such-tag"):
        pull("classifier-real", "no-such-tag", tmp_path / "model", repo=str(project))
