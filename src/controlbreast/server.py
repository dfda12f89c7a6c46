"""A shared MLflow tracking server, as teams run it: ``controlbreast tracking-server``.

``mlflow server`` with a SQL backend (a SQLite file, or PostgreSQL by URL, its password in
``PGPASSWORD`` or a file named by ``PGPASSWORD_FILE``, never in the URL: see
``controlbreast.credentials``) and an artifact root that the server serves itself
(``--artifacts-destination``: a folder, or ``s3://...`` with credentials from the environment), so
clients need only ``MLFLOW_TRACKING_URI=http://HOST:PORT``. Bound to 127.0.0.1 unless told
otherwise: the server has no authentication, so expose it only behind a proxy that adds some.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from controlbreast.credentials import PASSWORD_ENV, database_password, refuse_password, sqlalchemy_url

LOCALHOST = "127.0.0.1"


def default_backend(mlruns: Path) -> str:
    """The project's own SQLite store, so the server shows the runs made before it existed."""
    return f"sqlite:///{(Path(mlruns).resolve() / 'mlflow.db').as_posix()}"


def default_artifacts(mlruns: Path) -> str:
    """Where the server keeps the artifacts of experiments it creates."""
    return (Path(mlruns).resolve() / "artifacts").as_uri()


def server_command(backend: str, artifacts: str, host: str = LOCALHOST, port: int = 5000,
                   workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line (run with this interpreter, so the venv's MLflow serves)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
            "--artifacts-destination", artifacts, "--serve-artifacts", "--host", host,
            "--port", str(port), "--workers", str(workers)]


def serve(params: Path, backend: str | None, artifacts: str | None, host: str = LOCALHOST,
          port: int = 5000, workers: int = 1) -> None:
    """Replace this process with ``mlflow server`` (signals then reach it directly); the defaults
    are the store under ``paths.mlruns`` of ``params`` (``mlruns`` without a params file). A
    PostgreSQL password read from ``PGPASSWORD_FILE`` reaches the server as its ``PGPASSWORD``."""
    from controlbreast.config import load_config

    mlruns = Path(load_config(params).paths.mlruns) if Path(params).is_file() else Path("mlruns")
    mlruns.mkdir(parents=True, exist_ok=True)
    backend, artifacts = backend or default_backend(mlruns), artifacts or default_artifacts(mlruns)
    refuse_password(backend, "--backend")
    refuse_password(artifacts, "--artifacts")
    environment = dict(os.environ)
    if password := database_password(backend):
        environment[PASSWORD_ENV] = password
    command = server_command(sqlalchemy_url(backend), artifacts, host, port, workers)
    print(f"tracking-server: {backend} -> MLFLOW_TRACKING_URI=http://{host}:{port}", file=sys.stderr,
          flush=True)
    os.execve(command[0], command, environment)


def ui(params: Path, host: str = LOCALHOST, port: int = 5000) -> None:
    """Print the URL of the training runs with the headline columns (``runs_view``), then replace
    this process with ``mlflow server`` on the store the stages log to. With ``MLFLOW_TRACKING_URI``
    naming a server (already a UI), only the URL on that server is printed."""
    from controlbreast.config import load_config
    from controlbreast.runs_view import runs_url, share_view
    from controlbreast.tracking import configured_uri, use_store

    config = load_config(params)
    mlruns, experiment_id = Path(config.paths.mlruns), use_store(config)
    key, backend = share_view(experiment_id), configured_uri(mlruns)
    if backend.startswith(("http://", "https://")):
        print(f"ui: {runs_url(backend, experiment_id, key)}", flush=True)
        return
    print(f"ui: open {runs_url(f'http://{host}:{port}', experiment_id, key)}", flush=True)
    command = server_command(backend, default_artifacts(mlruns), host, port)
    os.execv(command[0], command)
