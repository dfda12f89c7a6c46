"""Keyed hashes of patient ids and file names; the key is a secret from the environment only.

A salted SHA-256 whose salt sits in ``params.yaml`` is reversible: params are logged to MLflow and
written to ``dvc.lock``, and ids such as ``P-1``, ``P-2`` are few enough to enumerate. So ids are
stored as HMAC-SHA256 (128 bits kept) under a secret read from ``CONTROLBREAST_GROUP_SECRET`` or
from the file named by ``CONTROLBREAST_GROUP_SECRET_FILE`` (outside the repository). The secret
travels to worker processes in memory and is never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

from controlbreast import credentials
from controlbreast.data.config import GROUP_SECRET_ENV, GROUP_SECRET_FILE_ENV, DataConfig
from controlbreast.errors import ConfigError

# The phantom's patients are synthetic: there is nothing to protect, so a fixed key keeps its
# outputs reproducible without a secret.
PHANTOM_KEY = b"controlbreast-phantom: synthetic ids, nothing to protect"
# data.allow_unkeyed_groups: a public key, so hashes are reversible by enumeration (warned).
PUBLIC_KEY = b"controlbreast-public-key: NOT A SECRET"
_HEX_CHARS = 32  # 128 bits


def read_secret(environ: Mapping[str, str] = os.environ, repo: Path | None = None) -> bytes | None:
    """The group secret from the environment, or None when neither variable is set (a secret
    file inside ``repo``, the working directory by default, is refused)."""
    return credentials.read_secret(GROUP_SECRET_ENV, GROUP_SECRET_FILE_ENV, environ, repo)


def group_key(cfg: DataConfig, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The key for ids and paths of ``cfg``'s source; None when a real source has no secret and
    unkeyed hashes are not allowed (an id met then is refused, see ``keyed_group``)."""
    if cfg.source == "phantom":
        return PHANTOM_KEY
    secret = read_secret(environ)
    if secret is not None:
        return secret
    if cfg.allow_unkeyed_groups:
        print(f"WARNING: no {GROUP_SECRET_ENV}: patient ids are hashed with a public key and can be "
              "recovered by enumeration (data.allow_unkeyed_groups: true)", file=sys.stderr)
        return PUBLIC_KEY
    return None


def _digest(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:_HEX_CHARS]


def keyed_group(identifier: str, key: bytes | None, where: str) -> str:
    """``pid-`` + 128-bit HMAC-SHA256 of a patient id; refuses when there is no key.

    ``where`` names the file or manifest the id came from, for the error message.
    """
    if key is None:
        raise ConfigError(f"{where} has patient ids but no secret to hash them with: set "
                          f"{GROUP_SECRET_ENV} (or {GROUP_SECRET_FILE_ENV}, a file outside the "
                          "repository), or data.allow_unkeyed_groups: true to accept reversible hashes")
    return "pid-" + _digest(key, identifier)


def anonymous_path(path: str, key: bytes) -> str:
    """``file-<128-bit keyed hash><suffix>``: a stable name for ``path`` that does not reveal it."""
    return "file-" + _digest(key, path) + PurePosixPath(path).suffix.lower()


def path_renamer(paths: Iterable[str], key: bytes):
    """A function replacing every occurrence of ``paths`` in a text by its ``anonymous_path``
    (rejection messages name other files, e.g. the copy a duplicate repeats)."""
    names = {path: anonymous_path(path, key) for path in paths}
    if not names:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(p) for p in sorted(names, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda match: names[match.group(0)], text)


def source_path_renamer(cfg: DataConfig, paths: Iterable[str]) -> Callable[[str], str]:
    """Identity, or with ``data.anonymise_paths`` a keyed renaming of every source path (and of
    paths quoted in rejection messages). Needs the group secret for a real source."""
    if not cfg.anonymise_paths:
        return str
    key = group_key(cfg)
    if key is None:
        raise ConfigError(f"data.anonymise_paths needs a secret: set {GROUP_SECRET_ENV} (or "
                          f"{GROUP_SECRET_FILE_ENV}), or data.allow_unkeyed_groups: true")
    return path_renamer(paths, key)

