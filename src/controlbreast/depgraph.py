"""Each DVC stage's source deps, computed from the code: the import closure of its command.

A stage runs ``controlbreast <command>``; the files that run are ``cli.py``, what it imports at
top level, and the closure of the stage module the command imports (imports inside functions
included, so the CLI's lazy imports are followed, but not its other commands'). ``write_deps``
rewrites the ``src/`` deps of every stage in ``dvc.yaml`` from it (round-trip YAML: comments, key
order and non-source deps stay), so editing an import never leaves a stage blind to code it runs.

Deps are whole files, hashed by DVC as bytes: an edit to a docstring or a comment reruns the stages
that run the file. That is deliberate: a hash that ignored docstrings would have to be a generated
file regenerated before every ``dvc repro``, and forgetting that step would leave a real code edit
unrerun, which costs more than an unneeded rerun (``dvc status`` shows it; ``dvc commit STAGE``
records a known no-op edit without rerunning).
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

from controlbreast.errors import ConfigError
from controlbreast.outputs import write_atomic
from controlbreast.overlay import round_trip_yaml

PACKAGE = "controlbreast"
SOURCE = Path(__file__).resolve().parents[1]  # the folder holding the package (src/ in a checkout)


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


def _function_imports(node: ast.FunctionDef) -> list[str]:
    return [f"{n.module}.{a.name}" for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names]


def cli_commands() -> dict[str, str]:
    """``controlbreast <command>`` → the stage module its function imports (from ``cli.py``)."""
    commands = {}
    for node in ast.parse((SOURCE / PACKAGE / "cli.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "command":
                name = decorator.args[0].value if decorator.args else node.name.replace("_", "-")
                stages = [m for m in _function_imports(node) if m.startswith(f"{PACKAGE}.stages.")]
                if stages:
                    commands[name] = stages[0]
    return commands


def stage_closure(command: str) -> set[Path]:
    """Source files a ``controlbreast <command>`` run executes: the CLI module and its stage's closure."""
    commands = cli_commands()
    if command not in commands:
        raise ConfigError(f"`controlbreast {command}` is not a stage command (known: {sorted(commands)})")
    cli = module_path(f"{PACKAGE}.cli")  # its other commands' lazy imports do not run: not walked
    return {cli} | closure({PACKAGE, *imported_modules(cli, top_level_only=True), commands[command]})


def stage_command(stage: dict, name: str) -> str:
    """The ``controlbreast`` subcommand a ``dvc.yaml`` stage runs."""
    words = str(stage.get("cmd", "")).split()
    if len(words) < 2 or words[0] != PACKAGE:
        raise ConfigError(f"dvc.yaml stage {name!r} runs {stage.get('cmd')!r}, not the project CLI")
    return words[1]


def folded(files: set[Path]) -> set[Path]:
    """``files`` with each subpackage all of whose modules are among them written as its folder
    (outermost first), as a hand-kept ``dvc.yaml`` would: ``src/controlbreast/diffusion``."""
    kept = set(files)
    folders = {path.parent for path in files if path.parent != SOURCE / PACKAGE}
    for folder in sorted(folders, key=lambda path: len(path.parts)):
        modules = set(folder.rglob("*.py"))
        if modules <= kept:
            kept = (kept - modules) | {folder}
    return kept


def source_deps(command: str, repo: Path) -> list[str]:
    """The ``src/`` deps of a stage running ``command``, as ``dvc.yaml`` paths relative to ``repo``."""
    repo = Path(repo).resolve()
    if not SOURCE.is_relative_to(repo):
        raise ConfigError(f"the package runs from {SOURCE}, outside {repo}: dvc-deps needs the "
                          "source checkout (pip install -e .)")
    return sorted(path.relative_to(repo).as_posix() for path in folded(stage_closure(command)))


def write_deps(dvc_yaml: Path, check: bool = False, root: Path | None = None) -> list[str]:
    """Set each stage's ``src/`` deps in ``dvc_yaml`` to its command's closure (other deps, and
    their order, kept before them); with ``check``, write nothing. ``root``: the folder the deps'
    paths are relative to (default: the file's own, as DVC reads them). Returns the stages whose
    source deps were (or, with ``check``, would be) changed."""
    dvc_yaml = Path(dvc_yaml)
    rt = round_trip_yaml()
    try:
        document = rt.load(dvc_yaml.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{dvc_yaml}: no such file") from None
    changed = []
    for name, stage in (document.get("stages") or {}).items():
        deps = stage.get("deps") or []
        wanted = source_deps(stage_command(stage, name), root or dvc_yaml.parent)
        if [str(dep) for dep in deps if str(dep).startswith("src/")] == wanted:
            continue
        changed.append(name)
        if "deps" not in stage:
            stage.insert(1, "deps", [])
        for index in reversed(range(len(deps))):  # one by one: the other deps keep their comments
            if str(deps[index]).startswith("src/"):
                del stage["deps"][index]
        stage["deps"].extend(wanted)
    if changed and not check:
        text = io.StringIO()
        rt.dump(document, text)
        write_atomic(dvc_yaml, text.getvalue().encode())
    return changed


def require_current(dvc_yaml: Path, root: Path | None = None) -> None:
    """Raise ``ConfigError`` naming the stages whose ``src/`` deps differ from their closure."""
    stale = write_deps(dvc_yaml, check=True, root=root)
    if stale:
        raise ConfigError(f"{dvc_yaml}: the src/ deps of {', '.join(stale)} are not the import closure "
                          "of their commands: run `controlbreast dvc-deps`")
