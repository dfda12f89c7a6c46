"""tracking: runs carry the commit, dirtiness, host and pid; killed runs are closed; stores are created
once under a lock; params carry no secret and no absolute path."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow

from builders import hospital_external, make_config
from controlbreast.tracking import (
    EXPERIMENT_KIND_TAG,
    QUIET_ARTIFACTS,
    git_commit,
    git_dirty,
    loggable_params,
    pipeline_outputs,
    stage_run,
    use_store,
)


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


def python_env() -> dict:
    """The environment of a child Python that imports this checkout's package."""
    import os

    import controlbreast

    src = str(Path(controlbreast.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_processes_creating_the_store_at_once_all_succeed(tmp_path):
    go = tmp_path / "go"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from controlbreast.config import parse_config
        from controlbreast.tracking import use_store
        config = parse_config({{"paths": {{"mlruns": {str(tmp_path / "mlruns")!r}}}}})
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        print(use_store(config))
    """)
    children = [subprocess.Popen([sys.executable, "-c", code], env=python_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(4)  # all three have imported MLflow and wait for the same instant
    go.touch()
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], [err[-500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, created once


def test_a_killed_stage_run_is_closed_as_killed_by_the_next(tmp_path, capfd):
    ready = tmp_path / "ready"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        import mlflow
        from controlbreast.config import parse_config
        from controlbreast.tracking import stage_run
        config = parse_config({{"paths": {{"mlruns": {str(tmp_path / "mlruns")!r}}}}})
        with stage_run(config, "train_classifier", ("seed",)) as run:
            with mlflow.start_run(run_name="real", nested=True) as nested:
                Path({str(ready)!r}).write_text(run.info.run_id + " " + nested.info.run_id)
                time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env=python_env())
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    killed = ready.read_text().split()
    config = make_config(tmp_path)
    use_store(config)
    assert {mlflow.get_run(run_id).info.status for run_id in killed} == {"RUNNING"}
    with stage_run(config, "evaluate", ("seed",)) as run:
        pass
    closed = f"marked 2 run(s) of killed processes as KILLED: {', '.join(sorted(killed))}"
    assert closed in capfd.readouterr().err
    for run_id in killed:
        info = mlflow.get_run(run_id).info
        assert info.status == "KILLED" and info.end_time is not None
    own = mlflow.get_run(run.info.run_id)
    assert own.info.status == "FINISHED" and own.data.tags["pid"] == str(os.getpid())
    assert own.data.tags["host"] == socket.gethostname()


def test_params_carry_no_secret_and_no_absolute_path(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    monkeypatch.chdir(repo)
    outside = tmp_path / "elsewhere" / "busi"
    config = make_config(repo, data={"source": "busi", "root": str(outside)},
                         synthetic_eval={"inception_weights": str(repo / "weights" / "inception.pth")})
    with stage_run(config, "ingest", ("data", "synthetic_eval", "paths")) as run:
        pass
    params = mlflow.get_run(run.info.run_id).data.params
    assert not [key for key in params if "salt" in key or "secret" in key]
    assert params["synthetic_eval.inception_weights"] == "weights/inception.pth"
    assert params["paths.prepared"] == "prepared"
    assert params["data.root"].startswith("busi#") and len(params["data.root"]) == len("busi#") + 8
    assert not [value for value in params.values() if str(tmp_path) in value]
    assert loggable_params({"a": {"api_secret": "x", "b": str(repo / "x")}}, repo) == {"a.b": "x"}


def test_external_sets_paths_are_logged_as_data_root_is(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    monkeypatch.chdir(repo)
    config = make_config(repo, evaluate=hospital_external(tmp_path))
    with stage_run(config, "ingest_external", ("evaluate",)) as run:
        pass
    logged = mlflow.get_run(run.info.run_id).data.params["evaluate.external"]
    assert "st-mary-site" not in logged and str(tmp_path) not in logged
    assert "'root': 'patient-jane-doe#" in logged and "'manifest': 'labels.csv#" in logged


def test_nested_runs_land_in_the_projects_experiment(tmp_path):
    config = make_config(tmp_path)
    with stage_run(config, "train_classifier", ("seed",)) as run, mlflow.start_run(nested=True) as nested:
        pass
    assert nested.info.experiment_id == run.info.experiment_id
    assert mlflow.get_experiment(run.info.experiment_id).name == config.tracking.experiment


def test_the_store_marks_the_experiment_as_model_training_and_quiets_artifact_bars(tmp_path, monkeypatch):
    monkeypatch.setenv(QUIET_ARTIFACTS, "true")
    config = make_config(tmp_path)
    experiment_id = use_store(config)
    assert os.environ[QUIET_ARTIFACTS] == "true"  # the user's choice wins
    monkeypatch.delenv(QUIET_ARTIFACTS)

    def kind() -> str:
        return mlflow.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG]

    assert kind() == "custom_model_development"
    mlflow.MlflowClient().delete_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG)
    use_store(config)  # an experiment made before the kind existed gets it
    assert kind() == "custom_model_development"
    mlflow.MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "finetuning")
    use_store(config)
    assert kind() == "finetuning" and os.environ[QUIET_ARTIFACTS] == "false"


def write_manifest(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.csv").write_text(text)
    return folder / "manifest.csv"


def test_a_run_logs_each_data_set_it_reads_with_its_role_and_dvc_digest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path)
    with stage_run(config, "ingest", ("seed",)) as before:
        pass  # no manifest yet: nothing to log
    write_manifest(Path(config.paths.prepared), "id,label,split\na,benign,train\nb,normal,train\n"
                                                "c,malignant,val\nd,normal,test\n")
    synthetic = write_manifest(Path(config.paths.synthetic), "id,label\ns1,benign\ns2,benign\n")
    write_manifest(Path(config.paths.external) / "scanner-b", "id,label,split\ne,normal,test\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  ingest:\n    outs:\n"
                                       f"    - path: prepared\n      md5: {'a' * 32}.dir\n"
                                       "  ingest_external:\n    outs:\n"
                                       f"    - path: external\n      md5: {'b' * 32}.dir\n")
    monkeypatch.setenv("DVC_STAGE", "train_classifiers")
    roles = ("training", "validation", "synthetic")
    with stage_run(config, "train_classifier", ("seed",), data=roles) as run:
        pass
    with stage_run(config, "evaluate", ("seed",), data=("test", "external")) as evaluation:
        pass
    assert not mlflow.get_run(before.info.run_id).inputs.dataset_inputs
    logged = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    found = {i.dataset.name: {t.key: t.value for t in i.tags} | {"digest.": i.dataset.digest} for i in logged}
    assert found == {
        "prepared/train": {"mlflow.data.context": "training", "images": "2", "class.benign": "1",
                           "class.normal": "1", "digest": f"dvc md5 {'a' * 32}.dir", "digest.": "a" * 32},
        "prepared/val": {"mlflow.data.context": "validation", "images": "1", "class.malignant": "1",
                         "digest": f"dvc md5 {'a' * 32}.dir", "digest.": "a" * 32},
        "synthetic": {"mlflow.data.context": "synthetic", "images": "2", "class.benign": "2",
                      "digest": f"manifest sha256 {hashlib.sha256(synthetic.read_bytes()).hexdigest()[:16]}",
                      "digest.": hashlib.sha256(synthetic.read_bytes()).hexdigest()[:16]}}
    assert {i.dataset.name: ({t.key: t.value for t in i.tags}["mlflow.data.context"], i.dataset.digest)
            for i in mlflow.get_run(evaluation.info.run_id).inputs.dataset_inputs} == {
        "prepared/test": ("test", "a" * 32), "scanner-b": ("external", "b" * 32)}  # the folder holding it
    assert not [i for i in logged if str(tmp_path) in i.dataset.source]  # portable paths, as params are


def test_a_run_is_named_as_its_dvc_stage(tmp_path, monkeypatch):
    config = make_config(tmp_path)
    with stage_run(config, "train_classifier", ("seed",)) as alone:
        pass
    monkeypatch.setenv("DVC_STAGE", "dvc.yaml:train_classifiers")  # as `dvc repro` sets it
    with stage_run(config, "train_classifier", ("seed",)) as run:
        pass
    assert mlflow.get_run(alone.info.run_id).info.run_name == "train_classifier"
    assert mlflow.get_run(run.info.run_id).info.run_name == "train_classifiers"


def test_the_pipelines_own_outputs_leave_the_tree_clean(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    (repo / "src").mkdir()
    for name in ("metrics/summary.json", "src/code.py", "dvc.lock"):
        (repo / name).write_text("a\n")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    monkeypatch.chdir(repo)
    config = make_config(repo)
    (repo / "metrics" / "summary.json").write_text("b\n")  # evaluate rewrote a committed metric
    assert pipeline_outputs(config)[:3] == ["checkpoints", "classifiers", "controls"]
    assert "metrics" in pipeline_outputs(config) and "mlruns" in pipeline_outputs(config)
    with stage_run(config, "report", ("seed",)) as run:
        pass
    assert mlflow.get_run(run.info.run_id).data.tags["git_dirty"] == "false"
    assert git_dirty() is True  # without the outputs named, the same tree reads dirty
    (repo / "src" / "code.py").write_text("b\n")
    assert git_dirty(pipeline_outputs(config)) is True  # code is never the pipeline's output
