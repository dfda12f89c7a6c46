"""runs_view and ``controlbreast ui``: the URL it prints opens, in headless Chromium, the
experiment's training runs (Model training view) with the headline columns on screen. The browser
test is skipped, with the reason, where Chromium is not installed (``.ci/run`` installs Debian's
``chromium`` when it runs as root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from builders import make_config
from controlbreast.run_metrics import classifier_headline
from controlbreast.runs_view import VIEW_KEY, VIEW_TAG, headline_columns, runs_url, share_view
from controlbreast.tracking import use_store

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def evaluated_store(root: Path) -> str:
    """A store under ``root`` with a training run (an arm nested in it) and an ``evaluate`` run
    logging the committed summary's headline; returns the experiment id."""
    experiment_id = use_store(make_config(root))
    with mlflow.start_run(run_name="train_classifier"), mlflow.start_run(run_name="real", nested=True):
        mlflow.log_metric("mean_val_auc", 0.9)
    with mlflow.start_run(run_name="evaluate"):
        mlflow.log_metrics(classifier_headline(json.loads((REPO / "metrics" / "summary.json").read_text())))
    return experiment_id


def test_the_shared_view_shows_the_test_columns_in_the_training_runs(tmp_path):
    experiment_id = evaluated_store(tmp_path)
    columns = headline_columns(experiment_id)
    assert columns[0] == "test_auc_real" and "test_diff_real_synthetic_vs_real" in columns
    assert not [key for key in columns if not key.startswith("test_")]
    assert share_view(experiment_id) == VIEW_KEY
    state = json.loads(mlflow.get_experiment(experiment_id).tags[VIEW_TAG + VIEW_KEY])
    assert state["selectedColumns"] == [f"metrics.`{key}`" for key in columns]
    url = runs_url("http://127.0.0.1:5000/", experiment_id)
    assert url == (f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
                   f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the MLflow UI did not answer at {url}")


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--window-size=1920,1000", "--virtual-time-budget=20000", *args, url],
        capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_the_url_controlbreast_ui_prints_opens_the_runs_with_the_headline_columns(tmp_path):
    evaluated_store(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(f"paths:\n  mlruns: {tmp_path / 'mlruns'}\n")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "controlbreast", "ui", "--port", str(port),
                               "--params", str(params)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        printed = server.stdout.readline()
        url = re.search(r"http://\S+", printed).group(0)
        assert url.startswith(f"http://127.0.0.1:{port}/") and "workflowType=machine_learning" in url
        wait_for(f"http://127.0.0.1:{port}/health", server)
        page = chromium(url, tmp_path / "profile", "--dump-dom").stdout
        shot = tmp_path / "runs.png"
        chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    # the runs table's scrolling columns (after the pinned run name and date) and their offsets
    offsets = {name: int(left) for name, left in re.findall(
        r'class="ag-header-cell[^"]*"[^>]*col-id="metrics\.`([^`]+)`"[^>]*style="left: (\d+)px', page)}
    assert "test_auc_real" in offsets and offsets["test_auc_real"] < 200  # first, right after Duration
    assert "evaluate" in page and "train_classifier" in page and "Model training" in page
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
