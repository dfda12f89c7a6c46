"""``pip install .`` must give a working package: ``pyproject.toml`` declares every distribution the
code imports, and the pinned lock (``requirements.txt``) satisfies every declared range."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def declared(extra: str | None = None) -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def pinned() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def imported_modules() -> dict[str, set[str]]:
    """Third-party top-level module → the package's files importing it."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "src" / "controlbreast").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            tops = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names)
            for top in tops - {"controlbreast"}:
                found.setdefault(top, set()).add(path.name)
    return found


def test_every_imported_distribution_is_declared():
    owners, wanted = packages_distributions(), set(declared())
    # One module can come from several distributions (mlflow, mlflow-skinny): one declared is enough.
    missing = sorted(f"{module} from {owners.get(module)} (imported by {sorted(files)[:3]})"
                     for module, files in imported_modules().items()
                     if not {canonicalize_name(d) for d in owners.get(module, [module])} & wanted)
    assert not missing, f"pyproject.toml [project.dependencies] lacks {missing}"


def test_the_pinned_lock_satisfies_every_declared_range():
    pins = pinned()
    for extra in (None, "dev"):
        for name, requirement in declared(extra).items():
            assert name in pins, f"requirements.txt does not pin {name}, which pyproject.toml declares"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"requirements.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CONTROLBREAST_TEST_INSTALL"),
                    reason="installs every dependency into a new venv (about 3 to 7 minutes): "
                           "set CONTROLBREAST_TEST_INSTALL=1 to run it")
def test_pip_install_into_an_empty_venv_imports_every_subpackage(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True,
                             text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = ("import importlib, pkgutil, controlbreast\n"
             "names = [m.name for m in pkgutil.walk_packages(controlbreast.__path__, 'controlbreast.')"
             " if not m.name.endswith('__main__')]\n"
             "[importlib.import_module(n) for n in names]\nprint(len(names))")
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr[-2000:]
    sources = list((REPO / "src" / "controlbreast").rglob("*.py"))
    assert int(imported.stdout) == len(sources) - 2  # all but the top __init__ and __main__
    cli = subprocess.run([str(venv / "bin" / "controlbreast"), "--help"], capture_output=True)
    assert cli.returncode == 0


def test_every_package_says_what_it_holds():
    """DVC warns once per stage and per run about an empty dependency file ("... is empty"): every
    package's ``__init__.py`` carries a docstring, so none is empty."""
    empty = [str(path.relative_to(REPO)) for path in (REPO / "src" / "controlbreast").rglob("__init__.py")
             if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not empty
