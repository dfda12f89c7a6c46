"""credentials: a password never sits in a store URL (refused, masked in the message), and comes from
``PGPASSWORD`` or the file ``PGPASSWORD_FILE`` names, outside the repository."""

import subprocess
import sys

import pytest

from controlbreast.config import parse_config
from controlbreast.credentials import database_password, masked, sqlalchemy_url
from controlbreast.errors import ConfigError
from controlbreast.tuning.study import open_storage
from test_tracking import python_env

SECRET = "s3cr3t-Pa55"
WITH_PASSWORD = f"postgresql://me:{SECRET}@db.internal:5432/optuna"


def test_a_url_is_masked_and_routed_to_psycopg():
    assert masked(WITH_PASSWORD) == "postgresql://me:***@db.internal:5432/optuna"
    assert masked("postgresql://me@db/x") == "postgresql://me@db/x"
    assert sqlalchemy_url("postgresql://me@db/x") == "postgresql+psycopg://me@db/x"
    assert sqlalchemy_url("postgres://me@db/x") == "postgresql+psycopg://me@db/x"
    assert sqlalchemy_url("sqlite:///a.db") == "sqlite:///a.db"


def test_a_password_in_a_url_is_refused_everywhere_without_being_echoed(tmp_path):
    with pytest.raises(ConfigError) as from_params:
        parse_config({"tune": {"storage": WITH_PASSWORD}})
    with pytest.raises(ConfigError) as from_option:
        open_storage(WITH_PASSWORD, parse_config({}).tune)
    server = subprocess.run([sys.executable, "-m", "controlbreast", "tracking-server", "--backend",
                             WITH_PASSWORD, "--params", str(tmp_path / "none.yaml")], env=python_env(),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert server.returncode == 2
    for message in (str(from_params.value), str(from_option.value), server.stdout + server.stderr):
        assert "me:***@db.internal" in message and "PGPASSWORD_FILE" in message
        assert SECRET not in message


def test_the_password_comes_from_the_variable_or_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSWORD_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    url = "postgresql://me@db/x"
    assert database_password(url) is None  # libpq may still read PGPASSFILE itself
    secret = tmp_path.parent / f"{tmp_path.name}-password"  # outside the working directory
    secret.write_text(f"{SECRET}\n")
    monkeypatch.setenv("PGPASSWORD_FILE", str(secret))
    assert database_password(url) == SECRET
    assert database_password("sqlite:///a.db") is None  # not PostgreSQL: nothing read
    monkeypatch.setenv("PGPASSWORD", "from-the-variable")
    assert database_password(url) == "from-the-variable"


@pytest.mark.parametrize(("content", "inside", "error"), [
    (None, False, r"PGPASSWORD_FILE=.*: cannot read \(No such file"),
    ("\n", False, r"PGPASSWORD_FILE=.* is empty"),
    (SECRET, True, r"PGPASSWORD_FILE=.* is inside the repository"),
])
def test_a_bad_password_file_is_one_clear_error(tmp_path, monkeypatch, content, inside, error):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    secret = (repo if inside else tmp_path) / "password"
    if content is not None:
        secret.write_text(content)
    monkeypatch.setenv("PGPASSWORD_FILE", str(secret))
    with pytest.raises(ConfigError, match=error):
        database_password("postgresql://me@db/x")
