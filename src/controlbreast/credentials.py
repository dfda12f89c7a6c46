"""Secrets from the environment only, and SQL store URLs (the MLflow server's backend, the Optuna
study) with the password kept out of every URL.

A secret comes from a variable or from a file that another variable names (outside the repository:
inside, it is one ``git add`` away from being published), and is never written anywhere.

A URL is a command-line argument (``ps`` lists it), a params value (committed to git, logged to
MLflow as a param) and a line in logs, so a URL holding a password is refused with its password
masked. PostgreSQL's client library reads the password from the environment: ``PGPASSWORD``, or
``PGPASSFILE`` (libpq's ``host:port:db:user:password`` file), or ``PGPASSWORD_FILE`` (ours: a
file holding only the password, as Docker and Kubernetes secrets are mounted), read here and
handed to the driver. ``postgresql://`` URLs are served by psycopg 3
(``postgresql+psycopg://``, SQLAlchemy's name for it); other URLs pass unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from controlbreast.errors import ConfigError

PASSWORD_ENV = "PGPASSWORD"
PASSWORD_FILE_ENV = "PGPASSWORD_FILE"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES


def masked(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``: safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username or ''}:***@"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=user + host))


def password_problem(url: str) -> str | None:
    """Why ``url`` cannot be used when it holds a password (module docstring), else None."""
    if urlsplit(url).password is None:
        return None
    return (f"{masked(url)} holds a password, which would be seen in process lists, params and logs; "
            f"remove it from the URL and export {PASSWORD_ENV}, or name a file holding it in "
            f"{PASSWORD_FILE_ENV}")


def refuse_password(url: str, key: str) -> None:
    """A ``ConfigError`` naming ``key`` (where the URL came from) when ``url`` holds a password."""
    if problem := password_problem(url):
        raise ConfigError(f"{key}: {problem}")


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy opens: ``postgresql://`` (or ``postgres://``) with the psycopg 3 driver."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit(parts._replace(scheme="postgresql+psycopg"))
    return url


def read_secret(value_env: str, file_env: str, environ: Mapping[str, str] = os.environ,
                repo: Path | None = None) -> bytes | None:
    """The secret in ``value_env``, else in the file that ``file_env`` names (refused inside ``repo``,
    the working directory by default); None when neither is set."""
    if environ.get(value_env):
        return environ[value_env].encode()
    name = environ.get(file_env)
    if not name:
        return None
    path = Path(name).expanduser().resolve()
    if path.is_relative_to((repo or Path.cwd()).resolve()):
        raise ConfigError(f"{file_env}={name} is inside the repository; keep the secret file outside it")
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"{file_env}={name}: cannot read ({error.strerror})") from None
    if not secret:
        raise ConfigError(f"{file_env}={name} is empty")
    return secret


def database_password(url: str) -> str | None:
    """The password of a PostgreSQL ``url`` from ``PGPASSWORD`` or ``PGPASSWORD_FILE`` (None: neither
    set, or not PostgreSQL; libpq may still find one in ``PGPASSFILE``)."""
    secret = read_secret(PASSWORD_ENV, PASSWORD_FILE_ENV) if is_postgres(url) else None
    return secret.decode() if secret else None
