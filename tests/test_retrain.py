"""``scripts/retrain.sh``, the retraining workflow's one script, run for real: a git + DVC checkout
of this project (the tiny run's outputs restored), a local DVC remote and a bare git origin; its
outputs pushed, its branch restorable byte for byte from a fresh clone, its report written."""

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from commands import digest, run
from project_builders import copy_project
from test_tracking import python_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(reproduced_tiny, tmp_path_factory) -> Path:
    """This project as a runner's checkout with a git origin: main's params.yaml and code committed,
    the tiny run's outputs, cache and MLflow store present but not committed (as a runner that
    restored its caches has them), so the script's repro reruns only what its overrides change."""
    root = copy_project(reproduced_tiny, tmp_path_factory.mktemp("retrain") / "project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")  # main's: the overlay is the script's job
    run("git", "add", "-A", cwd=root)
    run("git", "rm", "-r", "-q", "--cached", "dvc.lock", "metrics", "reports", cwd=root)  # no results yet
    run("git", "commit", "-qm", "project", cwd=root)
    run("git", "init", "-q", "--bare", str(root.parent / "origin.git"), cwd=root)
    run("git", "remote", "add", "origin", str(root.parent / "origin.git"), cwd=root)
    run("git", "push", "-q", "origin", "main", cwd=root)
    return root


def candidate_and_champion(project: Path) -> dict[str, str | None]:
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    aliases = {}
    for alias in ("candidate", "champion"):
        try:
            aliases[alias] = str(client.get_model_version_by_alias("controlbreast-classifier", alias).version)
        except MlflowException:
            aliases[alias] = None
    return aliases


@pytest.mark.slow
def test_retrain_then_the_gated_promote_as_the_workflow_runs_them(project, tmp_path):
    remote, summary, outputs = tmp_path / "dvc-remote", tmp_path / "summary.md", tmp_path / "outputs"
    run("scripts/retrain.sh", cwd=project, env={**python_env(),
        "RETRAIN_OVERLAY": "ci/params-tiny.yaml", "RETRAIN_SET": "evaluate.bootstrap=200",
        "RETRAIN_BRANCH": "retrain/test", "RETRAIN_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs),
        "DVC_REMOTE_URL": str(remote)})

    report = summary.read_text()
    assert "### Params diff" in report and "train_base.steps" in report  # the overlay, against main
    assert "### Metrics diff" in report and "metrics/headline/test/" in report
    assert "would become champion" in report
    candidate = outputs.read_text().strip().removeprefix("candidate=")
    assert candidate_and_champion(project) == {"candidate": candidate, "champion": None}  # not yet

    run("scripts/retrain.sh", cwd=project, env={**python_env(),"RETRAIN_PROMOTE_ONLY": candidate,
                                                "RETRAIN_SUMMARY": str(summary)})
    assert candidate_and_champion(project) == {"candidate": candidate, "champion": candidate}
    assert "is now champion" in summary.read_text()

    clone = tmp_path / "clone"  # anyone: a fresh clone of the pushed branch, data from the remote
    origin = str(project.parent / "origin.git")
    run("git", "clone", "-q", "-b", "retrain/test", origin, str(clone), cwd=tmp_path)
    run("dvc", "remote", "add", "--local", "-d", "storage", str(remote), cwd=clone)
    run("dvc", "pull", cwd=clone)
    for output in ("data/prepared", "models/controlnet", "models/classifiers/real"):
        assert digest(clone / output) == digest(project / output), output
    assert "Data and pipelines are up to date" in run("dvc", "repro", "--dry", cwd=clone)
    assert ".dvc/config.local" not in run("git", "ls-files", cwd=clone)  # the remote stayed local


@pytest.mark.slow
def test_ci_tiny_repro_writes_a_metrics_diff_and_renders_plots(project, tmp_path):
    summary, before = tmp_path / "summary.md", run("git", "rev-parse", "HEAD~1", cwd=project).strip()
    run("scripts/ci-tiny-repro.sh", cwd=project, env={"GITHUB_STEP_SUMMARY": str(summary), "BEFORE": before})
    report = summary.read_text()
    assert f"compared with `{before}`" in report  # a push: its previous head (a commit without results)
    assert "### Metrics diff" in report and "| Path" in report and "metrics/headline/test/" in report
    assert (project / "plots-diff" / "index.html").is_file()
