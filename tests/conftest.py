"""Shared fixtures; the builders they use live in ``builders.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builders import write_busi


@pytest.fixture
def busi_root(tmp_path: Path) -> Path:
    return write_busi(tmp_path / "busi")


@pytest.fixture(scope="session")
def trained_classifiers(tmp_path_factory):
    """Tiny classifiers of all three arms trained by the train-classifier stage (see classifier_builders)."""
    from classifier_builders import train_all

    return train_all(tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(scope="session")
def reproduced_tiny(tmp_path_factory) -> Path:
    """The tiny project after its one ``dvc repro`` (see project_builders); copy it before changing it."""
    from project_builders import reproduced_project

    return reproduced_project(tmp_path_factory.mktemp("reproduced") / "project")


@pytest.fixture
def small_phantom() -> dict:
    return {"patients_per_class": 6, "max_images_per_patient": 2, "render_size": 64}


@pytest.fixture(scope="session", autouse=True)
def local_tracking_store():
    """Tests use their own stores: a developer's MLFLOW_TRACKING_URI (a shared server) must not
    receive their runs; the tests that want a server set it themselves."""
    import os

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture(autouse=True)
def no_exported_tracking_uri():
    """``mlflow.set_tracking_uri`` exports the URI to the environment; remove it before and after
    each test, so one test's store never reads as the next test's (or the next module fixture's)
    ``MLFLOW_TRACKING_URI``. Tests that want a server set it with ``monkeypatch``."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def postgres_url(monkeypatch):
    """A fresh database on the PostgreSQL server of ``CONTROLBREAST_TEST_POSTGRES`` (``.ci/run``
    starts one, see ``.ci/postgres``), its password reached through ``PGPASSWORD_FILE`` as a user's
    would be; dropped afterwards. Skipped, with the reason, where there is no server."""
    import uuid
    from urllib.parse import urlsplit

    import psycopg

    server = os.environ.get("CONTROLBREAST_TEST_POSTGRES")
    if not server:
        pytest.skip("no PostgreSQL server: CONTROLBREAST_TEST_POSTGRES is unset (.ci/run starts one "
                    "when run as root with apt-get)")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSWORD_FILE", os.environ["CONTROLBREAST_TEST_POSTGRES_PASSWORD_FILE"])
    password = Path(os.environ["PGPASSWORD_FILE"]).read_text().strip()
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, password=password, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlsplit(server)._replace(path=f"/{name}").geturl()
    with psycopg.connect(server, password=password, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
