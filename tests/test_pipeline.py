"""The real thing end to end: a git + DVC repository, ``dvc repro``, MLflow store, push and pull."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from commands import digest, run
from project_builders import copy_project


@pytest.fixture(scope="module")
def project(reproduced_tiny, tmp_path_factory) -> Path:
    """The tiny reproduced project (CI's overlay, ``dvc repro`` done) with a local DVC remote."""
    root = copy_project(reproduced_tiny, tmp_path_factory.mktemp("pipeline") / "project")
    run("dvc", "remote", "add", "-d", "local", str(root.parent / "remote"), cwd=root)
    return root


@pytest.mark.slow
def test_repro_writes_outputs_lock_and_metrics(project):
    assert (project / "dvc.lock").is_file()
    assert (project / "data" / "prepared" / "manifest.csv").is_file()
    assert (project / "data" / "controls" / "controls.csv").is_file()
    assert (project / "reports" / "data_quality" / "index.html").is_file()
    assert "Data and pipelines are up to date" in run("dvc", "repro", cwd=project)


@pytest.mark.slow
def test_dvc_metrics_show_is_a_table_that_fits_a_terminal(project):
    """DVC reads only the headline as metrics: a row per set and arm, four columns."""
    table = run("dvc", "metrics", "show", cwd=project).splitlines()
    assert table[0].split() == ["Path", "auc", "diff", "diff_high", "diff_low"]
    assert any(line.startswith("metrics/headline/test/real+synthetic.json ") for line in table)
    assert max(map(len, table)) <= 120 and len(table) <= 40
    assert max(map(len, run("dvc", "metrics", "show", "--md", cwd=project).splitlines())) <= 120
    full = run("dvc", "metrics", "show", "--json", "metrics/ingest.json", cwd=project)
    assert '"images"' in full  # any committed metrics file, by name


@pytest.mark.slow
def test_mlflow_store_has_one_run_per_stage(project):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("controlbreast")
    runs = client.search_runs([experiment.experiment_id])
    top = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    by_stage = {run.info.run_name: run for run in top}
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert sorted(run.info.run_name for run in top) == sorted(stages)  # a run per stage, named as it
    assert by_stage["validate"].data.metrics["passed"] == 1
    assert by_stage["ingest"].data.params["data.source"] == "phantom"
    assert by_stage["ingest"].data.metrics["images"] > 0
    artifacts = [a.path for a in client.list_artifacts(by_stage["controls"].info.run_id)]
    assert "controls_preview.png" in artifacts


@pytest.mark.slow
def test_mlflow_runs_are_for_comparing(project):
    """Read back as a user's client does: every run within the metric cap, headline names on the
    evaluation, each run's data sets with their role, models named by arm and seed."""
    from mlflow.tracking import MlflowClient

    from controlbreast.run_metrics import CAP

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("controlbreast")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    keys = {run.info.run_name + ("" if "mlflow.parentRunId" not in run.data.tags else " (nested)"):
            len(run.data.metrics) for run in runs}
    assert max(len(run.data.metrics) for run in runs) <= CAP, keys
    named = {run.info.run_name: run for run in runs if "mlflow.parentRunId" not in run.data.tags}
    assert {"test_auc_real", "test_diff_real_synthetic_vs_real_low"} <= set(named["evaluate"].data.metrics)

    def inputs(run, key: str = "mlflow.data.context") -> set[str]:
        return {tag.value for found in run.inputs.dataset_inputs for tag in found.tags if tag.key == key}

    assert inputs(named["evaluate"]) == {"test", "external"}
    assert inputs(named["train_classifiers"]) == {"training", "validation", "synthetic"}
    assert inputs(named["train_classifier"]) == {"training", "validation"}
    assert inputs(named["evaluate_synthetic"]) == {"training", "validation", "synthetic"}
    digests = inputs(named["evaluate"], "digest")
    assert digests and all(value.startswith("dvc md5 ") for value in digests)  # read: DVC's hash
    seeds = [run for run in runs if run.info.run_name.split("/")[-1].startswith("seed-")]
    assert seeds and all(inputs(run) >= {"training", "validation"} for run in seeds)
    models = client.search_logged_models([experiment.experiment_id], max_results=1000)
    names = sorted(model.name for model in models)
    assert len(names) == len(seeds) == len(set(names)) and "real-seed-0" in names


@pytest.mark.slow
def test_push_then_pull_restores_identical_data(project):
    before = digest(project / "data" / "prepared")
    run("dvc", "push", cwd=project)
    shutil.rmtree(project / "data" / "prepared")
    shutil.rmtree(project / ".dvc" / "cache")
    run("dvc", "pull", cwd=project)
    assert digest(project / "data" / "prepared") == before


@pytest.mark.slow
def test_changing_a_controls_param_reruns_controls_and_what_reads_them(project):
    """Only ``controls`` and the stages downstream of it go stale; putting the value back and
    rerunning ``controls`` (deterministic) makes the whole pipeline current again."""
    original = (project / "params.yaml").read_text()
    run("controlbreast", "overlay", "--set", "controls.blur_kernel=3", cwd=project)
    stale = set(json.loads(run("dvc", "status", "--json", cwd=project)))
    assert "controls" in stale and not stale & {"ingest", "train_base"}
    output = run("dvc", "repro", "controls", cwd=project)
    assert "Stage 'ingest' didn't change, skipping" in output and "Running stage 'controls'" in output
    assert "validate" in set(json.loads(run("dvc", "status", "--json", cwd=project)))  # it reads the controls
    (project / "params.yaml").write_text(original)
    run("dvc", "repro", "controls", cwd=project)
    assert json.loads(run("dvc", "status", "--json", cwd=project)) == {}


@pytest.mark.slow
def test_a_comment_in_training_code_marks_only_the_stages_that_run_it(project):
    source = project / "src" / "controlbreast" / "diffusion" / "train.py"
    original = source.read_text()
    source.write_text(original + "\n# a comment: no behaviour changes, but the stages that run it rerun\n")
    try:
        changed = set(json.loads(run("dvc", "status", "--json", cwd=project)))
    finally:
        source.write_text(original)
    assert {"train_base", "train_controlnet"} <= changed
    assert not changed & {"ingest", "controls", "validate", "train_classifier", "evaluate"}


@pytest.mark.slow
def test_results_are_committed_and_compared_across_commits(project, tmp_path):
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-qm", "first results", cwd=project)
    tracked = run("git", "ls-files", "metrics", "reports", cwd=project).split()
    assert {"metrics/classifier.json", "metrics/ingest.json", "reports/classifier/roc.csv"} <= set(tracked)
    assert not [path for path in tracked if path.startswith(("reports/synthetic", "reports/data_quality"))]

    run("controlbreast", "overlay", "--set", "evaluate.bootstrap_seed=1", cwd=project)
    run("dvc", "repro", cwd=project)
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-qm", "another bootstrap seed", cwd=project)
    diff = json.loads(run("dvc", "metrics", "diff", "--json", "HEAD~1", "HEAD", cwd=project))
    assert diff["metrics/headline/test/real+synthetic.json"], "the intervals moved with the bootstrap seed"
    assert max(map(len, run("dvc", "metrics", "diff", "HEAD~1", "HEAD", cwd=project).splitlines())) <= 120
    plots = run("dvc", "plots", "diff", "--json", "HEAD~1", "HEAD", cwd=project)
    assert "reports/classifier/roc.csv" in plots

    run("dvc", "exp", "run", "--set-param", "evaluate.bootstrap_seed=2", cwd=project)
    table = run("dvc", "exp", "show", "--csv", cwd=project).splitlines()
    assert len(table) >= 3 and "bootstrap_seed" in table[0]  # workspace, HEAD and the experiment

    run("dvc", "push", cwd=project)
    run("controlbreast", "pull", "controlnet", "--rev", "HEAD", "--repo", str(project),
        "-o", str(tmp_path / "controlnet"), cwd=tmp_path)  # the dvc.yaml artifact, from the remote
    assert (tmp_path / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()

    # the registered candidate's arm, pulled at this revision, predicts what the registry alias does
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    candidate = client.get_model_version_by_alias("controlbreast-classifier", "candidate")
    arm, seed = candidate.tags["arm"], candidate.tags["seed"]
    artifact = f"classifier-{arm.replace('+', '-')}"
    run("controlbreast", "pull", artifact, "--rev", "HEAD", "--repo", str(project),
        "-o", str(tmp_path / "classifier"), cwd=tmp_path)
    scans = [str(p) for p in sorted((project / "data" / "prepared" / "images").glob("*.png"))[:3]]
    pulled = run("controlbreast", "predict", *scans, "--model", str(tmp_path / "classifier" / f"seed-{seed}"),
                 cwd=project)
    registered = run("controlbreast", "predict", *scans, "--model", "candidate", cwd=project)
    rows = [[line.split(",") for line in text.splitlines()] for text in (pulled, registered)]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == 4  # header, 3 scans
    for mine, theirs in zip(rows[0][1:], rows[1][1:], strict=True):
        assert mine[0] == theirs[0] and all(abs(float(a) - float(b)) <= 2e-6
                                            for a, b in zip(mine[1:-1], theirs[1:-1], strict=True))
