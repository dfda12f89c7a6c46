"""A shared tracking server: ``controlbreast tracking-server`` on a free local port with a SQLite
backend; a real stage run with ``MLFLOW_TRACKING_URI`` pointing at it is read back over HTTP."""

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


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, server.communicate()[1][-2000:]
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no MLflow server at {base} after {timeout} s")


@pytest.fixture
def server(tmp_path):
    """``controlbreast tracking-server`` on 127.0.0.1:<free port>; yields its URL, then stops it."""
    port = free_port()
    command = [sys.executable, "-m", "controlbreast", "tracking-server", "--port", str(port),
               "--backend", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
               "--artifacts", (tmp_path / "server" / "artifacts").as_uri(),
               "--params", str(tmp_path / "server" / "params.yaml")]
    (tmp_path / "server").mkdir()
    process = subprocess.Popen(command, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its workers: this test's own group
        process.communicate(timeout=60)


@pytest.mark.slow  # a server start and a stage run: about a minute on 2 cores
def test_a_stage_logs_to_the_server_named_by_the_environment(tmp_path, server):
    work = tmp_path / "work"
    work.mkdir()
    params = {"paths": {"prepared": "prepared", "metrics": "metrics", "mlruns": "mlruns"},
              "data": {"workers": 1, "image_size": 32},
              "phantom": {"patients_per_class": 6, "max_images_per_patient": 2, "render_size": 64}}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**python_env(), "MLFLOW_TRACKING_URI": server}
    result = subprocess.run([sys.executable, "-m", "controlbreast", "ingest"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert not (work / "mlruns" / "mlflow.db").exists()  # the variable won over paths.mlruns
    experiment = api(server, "experiments/get-by-name?experiment_name=controlbreast")["experiment"]
    runs = api(server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1
    tags = {tag["key"]: tag["value"] for tag in runs[0]["data"]["tags"]}
    metrics = {metric["key"]: metric["value"] for metric in runs[0]["data"]["metrics"]}
    assert tags["stage"] == "ingest" and runs[0]["info"]["status"] == "FINISHED"
    assert metrics["images"] > 0
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # served, not a client path


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
