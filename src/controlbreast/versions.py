"""Any version of the project's data and models, by git revision or tag: ``controlbreast pull``.

A name is either an artifact of ``dvc.yaml``'s ``artifacts:`` section (base-diffusion, controlnet,
classifier-*) or a data set (``data``/``prepared``, ``controls``, ``synthetic``, whose folders are
read from ``params.yaml``'s ``paths`` at that revision). Both are read at the revision asked for,
so a renamed path still resolves, and fetched with ``dvc get`` from the repository's DVC remote.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from controlbreast.errors import PullError

DATA_SETS = {"data": "prepared", "prepared": "prepared", "controls": "controls", "synthetic": "synthetic"}


def read_at(repo: str, path: str, rev: str | None) -> dict:
    """A git-tracked YAML file of ``repo`` at ``rev`` (None: the default branch or working tree)."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return yaml.safe_load(dvc.api.read(path, repo=repo, rev=rev)) or {}
    except (DvcException, FileNotFoundError) as error:
        raise PullError(f"{repo}@{rev or 'HEAD'}: cannot read {path}: {error}") from None


def artifact_path(repo: str, name: str, rev: str | None) -> str:
    """The repository path that ``name`` stands for at ``rev``."""
    if name in DATA_SETS:
        paths = read_at(repo, "params.yaml", rev).get("paths") or {}
        return str(paths.get(DATA_SETS[name], f"data/{DATA_SETS[name]}"))
    artifacts = read_at(repo, "dvc.yaml", rev).get("artifacts") or {}
    if name not in artifacts:
        known = sorted([*artifacts, *DATA_SETS])
        raise PullError(f"{name!r} is no artifact of {repo}@{rev or 'HEAD'}; known: {', '.join(known)}")
    return str(artifacts[name]["path"])


def pull(name: str, rev: str | None, out: Path, repo: str = ".") -> Path:
    """Download ``name`` as it was at ``rev`` into ``out`` (which must not exist); returns ``out``."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    out = Path(out)
    if out.exists():
        raise PullError(f"{out}: already exists; choose another -o folder or remove it")
    path = artifact_path(repo, name, rev)
    try:
        Repo.get(repo, path, out=str(out), rev=rev)
    except DvcException as error:
        raise PullError(f"{name} ({path}) at {rev or 'HEAD'} of {repo}: {error}; was it `dvc push`ed "
                        "to the remote?") from None
    return out
