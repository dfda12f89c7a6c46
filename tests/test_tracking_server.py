"""A shared tracking server: ``controlbreast tracking-server`` on a free local port with a SQLite
backend, and with a PostgreSQL one (where a server is given, see the ``postgres_url`` fixture); real
stage runs with ``MLFLOW_TRACKING_URI`` pointing at it are read back over HTTP."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from test_tracking import python_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_healthy(base: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no MLflow server at {base} after {timeout} s")


@contextlib.contextmanager
def tracking_server(folder: Path, backend: str):
    """``controlbreast tracking-server`` on 127.0.0.1:<free port> with ``backend``; yields its URL,
    then stops it. Its output goes to ``folder/server.log``."""
    port = free_port()
    folder.mkdir()
    command = [sys.executable, "-m", "controlbreast", "tracking-server", "--port", str(port),
               "--backend", backend, "--artifacts", (folder / "artifacts").as_uri(),
               "--params", str(folder / "params.yaml")]
    with open(folder / "server.log", "w") as log:
        process = subprocess.Popen(command, env=python_env(), stdout=log, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, folder / "server.log")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its workers: this test's own group
        process.wait(timeout=60)


@pytest.fixture
def server(tmp_path):
    with tracking_server(tmp_path / "server", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}") as base:
        yield base


def run_stages(work: Path, server: str, params: dict, *stages: str) -> None:
    """Run ``controlbreast STAGE`` for each of ``stages`` in ``work``, logging to ``server``."""
    work.mkdir(exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**python_env(), "MLFLOW_TRACKING_URI": server}
    for stage in stages:
        result = subprocess.run([sys.executable, "-m", "controlbreast", stage], cwd=work, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]


def stage_runs(server: str) -> dict[str, dict]:
    """The runs of experiment ``controlbreast`` on ``server``, by their ``stage`` tag."""
    experiment = api(server, "experiments/get-by-name?experiment_name=controlbreast")["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # served, not a client path
    runs = api(server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    return {next(t["value"] for t in run["data"]["tags"] if t["key"] == "stage"): run for run in runs}


PHANTOM_PARAMS = {"paths": {"prepared": "prepared", "metrics": "metrics", "mlruns": "mlruns"},
                  "data": {"workers": 1, "image_size": 32},
                  "phantom": {"patients_per_class": 6, "max_images_per_patient": 2, "render_size": 64},
                  "tune": {"n_trials": 0}}  # no tuning: its quotas do not fit a 6-patient set (preflight)


@pytest.mark.slow  # a server start and a stage run: about a minute on 2 cores
def test_a_stage_logs_to_the_server_named_by_the_environment(tmp_path, server):
    run_stages(tmp_path / "work", server, PHANTOM_PARAMS, "ingest")
    assert not (tmp_path / "work" / "mlruns" / "mlflow.db").exists()  # the variable won over paths.mlruns
    runs = stage_runs(server)
    assert list(runs) == ["ingest"] and runs["ingest"]["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in runs["ingest"]["data"]["metrics"]}["images"] > 0


@pytest.mark.slow  # a server start, ingest and a 4-step train-base: about a minute on 2 cores
def test_a_training_run_on_the_postgresql_backed_server_is_read_back(tmp_path, postgres_url, monkeypatch):
    from builders import TINY_PIXEL, TINY_SAMPLING, TINY_TRAIN
    from controlbreast.config import parse_config
    from controlbreast.data.ingest import ingest

    password = Path(os.environ["PGPASSWORD_FILE"]).read_text().strip()
    train = {**TINY_TRAIN, "validate_every": 4, "checkpoint_every": 4}  # one of each: the run's end
    params = {**PHANTOM_PARAMS, "paths": {**PHANTOM_PARAMS["paths"], "models": "models"},
              "diffusion": {"pixel": TINY_PIXEL}, "train_base": train, "sampling": TINY_SAMPLING}
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    ingest(parse_config(params))  # in this process: the stage under test is train-base
    with tracking_server(tmp_path / "server", postgres_url) as server:
        run_stages(tmp_path / "work", server, params, "train-base")
        run = stage_runs(server)["train_base"]
        listing = api(server, f"artifacts/list?run_id={run['info']['run_id']}&path=model")
        model = tmp_path / "work" / "models" / "base"
        weights = min(model.rglob("*.safetensors")).relative_to(model)
        with urllib.request.urlopen(f"{server}/get-artifact?path=model/{weights.as_posix()}"
                                    f"&run_uuid={run['info']['run_id']}", timeout=30) as response:
            served = response.read()
    assert run["info"]["status"] == "FINISHED"
    params_logged = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params_logged["train_base.steps"] == str(TINY_TRAIN["steps"])
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["final_steps"] == TINY_TRAIN["steps"]
    assert f"model/{weights.parts[0]}" in {f["path"] for f in listing["files"]}
    assert served == (model / weights).read_bytes()  # the model, byte for byte, from the server's store
    log = (tmp_path / "server" / "server.log").read_text()
    assert f"tracking-server: {postgres_url} -> MLFLOW_TRACKING_URI={server}" in log
    assert password not in log and password not in json.dumps(run)  # never printed, never logged


def test_opening_a_store_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    from builders import make_config
    from controlbreast.tracking import use_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    use_store(make_config(tmp_path / "a"))  # MLflow alone would export this store's URI...
    assert "MLFLOW_TRACKING_URI" not in os.environ  # ...and the next store would look like a server
    use_store(make_config(tmp_path / "b"))
    assert (tmp_path / "b" / "mlruns" / "mlflow.db").is_file()


def test_the_server_binds_only_the_loopback_interface_by_default():
    from controlbreast.server import server_command

    command = server_command("sqlite:////tmp/x.db", "file:///tmp/artifacts")
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert "--artifacts-destination" in command and "--serve-artifacts" in command
    assert Path(command[0]) == Path(sys.executable)
