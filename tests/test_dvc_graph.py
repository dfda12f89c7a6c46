"""``dvc.yaml`` against the code: each stage depends on exactly the source files it runs, and the
package's layers import one way (a lower layer never imports a higher one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src"
PACKAGE = "controlbreast"

# Lowest first: a module may import its own layer and lower ones, never a higher one.
LAYERS = (
    # leaves, and the CLI's project-level tools (params overlays, pull, the tracking server)
    ("errors", "digests", "outputs", "config", "grids", "tracking", "mixing", "distributed",
     "overlay", "versions", "server"),
    ("data",),
    ("controls",),
    ("quality",),
    ("diffusion",),
    ("generation",),
    ("classify",),
    ("evaluation",),
    ("tuning",),
    ("report",),
    ("stages",),
    ("cli", "__main__"),
)


def module_path(name: str) -> Path | None:
    """The file of module ``name`` (``a.b`` → ``src/a/b.py`` or ``src/a/b/__init__.py``), if ours."""
    base = SOURCE.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    """Project modules that ``path`` imports (inside functions too, unless ``top_level_only``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if module_path(f"{node.module}.{alias.name}")}
    return found


def with_packages(name: str) -> set[str]:
    """``a.b.c`` and the packages whose ``__init__`` importing it runs: ``a``, ``a.b``."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(roots: set[str]) -> set[Path]:
    """Every project source file that importing ``roots`` executes."""
    seen: set[str] = set()
    pending = [m for root in roots for m in with_packages(root)]
    while pending:
        name = pending.pop()
        path = module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        pending += [m for imported in imported_modules(path) for m in with_packages(imported)]
    return {module_path(name) for name in seen}


def cli_commands() -> dict[str, str]:
    """``controlbreast <command>`` → the stage module its function imports (from ``cli.py``)."""
    commands = {}
    for node in ast.parse((SOURCE / PACKAGE / "cli.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "command":
                name = decorator.args[0].value if decorator.args else node.name.replace("_", "-")
                stages = [m for m in imported_modules_of_function(node) if m.startswith(f"{PACKAGE}.stages.")]
                if stages:
                    commands[name] = stages[0]
    return commands


def imported_modules_of_function(node: ast.FunctionDef) -> list[str]:
    return [f"{n.module}.{a.name}" for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names]


def stage_closure(command: str) -> set[Path]:
    """Source files a ``controlbreast <command>`` run executes: the CLI module and its stage's closure."""
    cli = module_path(f"{PACKAGE}.cli")  # its other commands' lazy imports do not run: not walked
    return {cli} | closure({PACKAGE, *imported_modules(cli, top_level_only=True), cli_commands()[command]})


def declared_sources(deps: list[str]) -> set[Path]:
    """The ``.py`` files a stage's ``deps`` name (a folder stands for every file under it)."""
    files: set[Path] = set()
    for dep in deps:
        path = REPO / dep
        if dep.startswith("src/"):
            files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return files


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_command(stage: dict) -> str:
    words = stage["cmd"].split()
    assert words[0] == PACKAGE, f"a stage runs the project CLI, not {stage['cmd']!r}"
    return words[1]


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_stage_deps_are_the_import_closure_of_its_command(name):
    stage = dvc_stages()[name]
    needed = stage_closure(stage_command(stage))
    declared = declared_sources(stage.get("deps", []))
    relative = lambda paths: sorted(p.relative_to(REPO).as_posix() for p in paths)  # noqa: E731
    assert not needed - declared, f"dvc.yaml stage {name!r} lacks deps {relative(needed - declared)}"
    assert not declared - needed, f"dvc.yaml stage {name!r} depends on code it never runs: " \
                                  f"{relative(declared - needed)}"


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_layers_import_one_way():
    back_edges = []
    for path in (SOURCE / PACKAGE).rglob("*.py"):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        if name == PACKAGE:
            continue
        for imported in imported_modules(path):
            if imported != PACKAGE and layer_of(imported) > layer_of(name):
                back_edges.append(f"{name} -> {imported}")
    assert not back_edges, "lower layers import higher ones:\n" + "\n".join(sorted(back_edges))


def test_the_closure_follows_imports_inside_functions():
    """The CLI imports each stage lazily; the closure must still see it (and nothing of other stages)."""
    ingest = {p.relative_to(SOURCE / PACKAGE).as_posix() for p in stage_closure("ingest")}
    assert {"cli.py", "stages/ingest.py", "data/ingest.py", "errors.py"} <= ingest
    assert not any(p.startswith(("diffusion/", "classify/")) for p in ingest)
