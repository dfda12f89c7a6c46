"""tracking: runs carry the commit and whether the tree had uncommitted changes."""

import subprocess

import mlflow

from builders import make_config
from controlbreast.tracking import git_commit, git_dirty, stage_run


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_a_run_tags_the_commit_and_a_dirty_tree(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "params.yaml").write_text("seed: 0\n")
    (repo / "dvc.lock").write_text("a\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    monkeypatch.chdir(repo)
    (repo / "dvc.lock").write_text("b\n")  # DVC rewrites it between stages: not a dirty tree
    assert git_dirty() is False
    config = make_config(tmp_path)
    with stage_run(config, "ingest", ("seed",)) as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["git_commit"] == git_commit() and len(tags["git_commit"]) == 40
    assert tags["git_dirty"] == "false"
    (repo / "params.yaml").write_text("seed: 1\n")
    assert git_dirty() is True


def test_outside_a_repository_there_is_no_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit() is None and git_dirty() is None
