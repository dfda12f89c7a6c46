"""``dvc.yaml`` against the code: each stage depends on exactly the source files it runs, and the
package's layers import one way (a lower layer never imports a higher one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlbreast.depgraph import (
    PACKAGE,
    SOURCE,
    imported_modules,
    require_current,
    source_deps,
    stage_closure,
    stage_command,
    write_deps,
)
from controlbreast.errors import ConfigError
from controlbreast.stage_list import END, PAGES, pipeline_order, render

REPO = Path(__file__).resolve().parents[1]

# Lowest first: a module may import its own layer and lower ones, never a higher one.
LAYERS = (
    # settings: the params loader, the Section base and (see layer_of) every package's config.py,
    # with the two leaves they use; every stage imports them, so they import nothing else
    ("errors", "credentials", "sections", "config"),
    # leaves, and the CLI's project-level tools (params overlays, pull, the tracking server)
    ("digests", "outputs", "grids", "tracking", "run_metrics", "runs_view", "mixing", "distributed",
     "overlay", "depgraph", "stage_list", "versions", "server"),
    ("data",),
    ("controls",),
    ("quality",),
    ("diffusion",),
    ("generation",),
    ("classify",),
    ("evaluation",),
    ("tuning",),
    ("report", "readme"),  # readme: the README's results table, in the report's number format
    ("stages",),
    ("cli", "__main__"),
)


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


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_stage_deps_are_the_import_closure_of_its_command(name):
    stage = dvc_stages()[name]
    needed = stage_closure(stage_command(stage, name))
    declared = declared_sources(stage.get("deps", []))
    relative = lambda paths: sorted(p.relative_to(REPO).as_posix() for p in paths)  # noqa: E731
    assert not needed - declared, f"dvc.yaml stage {name!r} lacks deps {relative(needed - declared)}: " \
                                  "run `controlbreast dvc-deps`"
    assert not declared - needed, f"dvc.yaml stage {name!r} depends on code it never runs: " \
                                  f"{relative(declared - needed)}: run `controlbreast dvc-deps`"


def test_dvc_deps_rewrites_only_the_source_deps_and_keeps_the_rest(tmp_path):
    """A stage that lost one dep and gained a stray one gets exactly its closure back; every other
    line of dvc.yaml (comments, data deps, params, outs) is kept byte for byte."""
    dvc_yaml = tmp_path / "dvc.yaml"
    original = (REPO / "dvc.yaml").read_text()
    broken = original.replace("      - src/controlbreast/data/privacy.py\n", "", 1).replace(
        "      - src/controlbreast/stages/controls.py\n",
        "      - src/controlbreast/stages/controls.py\n      - src/controlbreast/server.py\n", 1)
    dvc_yaml.write_text(broken)
    with pytest.raises(ConfigError, match=r"ingest, controls.*run `controlbreast dvc-deps`"):
        require_current(dvc_yaml, root=REPO)
    assert dvc_yaml.read_text() == broken  # --check writes nothing
    assert write_deps(dvc_yaml, root=REPO) == ["ingest", "controls"]
    assert dvc_yaml.read_text() == original
    assert write_deps(dvc_yaml, root=REPO) == []


def test_subpackages_used_whole_are_one_folder_dep():
    deps = source_deps("train-base", REPO)
    assert "src/controlbreast/diffusion" in deps and "src/controlbreast/diffusion/train.py" not in deps
    assert "src/controlbreast/data/manifest.py" in deps and "src/controlbreast/data" not in deps


def package_layer(part: str) -> int:
    """The layer of a top-level module or package of ours (``data``, ``config``)."""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def is_section_module(module: str) -> bool:
    """``controlbreast.<package>.config``: a package's params sections, beside the code reading them."""
    parts = module.split(".")
    return len(parts) == 3 and parts[2] == "config"


def layer_of(module: str) -> int:
    """A package's config module sits in the settings layer (the root config assembles it)."""
    if is_section_module(module):
        return package_layer("config")
    return package_layer(module.split(".")[1] if "." in module else module)


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


def test_package_sections_import_only_the_settings_below_them():
    """The root config imports every package's config module to validate the whole file, so one that
    imported library code (or a higher package's sections) would put it into every stage's closure.
    Each may import ``sections``, ``errors``, ``credentials`` and lower packages' config modules."""
    leaves = {f"{PACKAGE}.{name}" for name in ("sections", "errors", "credentials")}
    modules = sorted((SOURCE / PACKAGE).glob("*/config.py"))
    assert len(modules) >= 9, "expected one config.py per package that owns a params section"
    wrong = []
    for path in modules:
        package = path.parent.name
        for imported in imported_modules(path) - leaves:
            below = is_section_module(imported) and \
                package_layer(imported.split(".")[1]) < package_layer(package)
            if not below:
                wrong.append(f"{package}/config.py -> {imported}")
    assert not wrong, "package config modules import more than the settings below them:\n" + \
        "\n".join(sorted(wrong))


def test_the_closure_follows_imports_inside_functions():
    """The CLI imports each stage lazily; the closure must still see it (and nothing of other stages but
    their params sections: every stage validates the whole params.yaml)."""
    ingest = {p.relative_to(SOURCE / PACKAGE).as_posix() for p in stage_closure("ingest")}
    assert {"cli.py", "stages/ingest.py", "data/ingest.py", "errors.py", "diffusion/config.py"} <= ingest
    settings = {"__init__.py", "config.py"}
    assert not any(p.startswith(("diffusion/", "classify/")) and Path(p).name not in settings for p in ingest)


def test_the_docs_stage_graph_is_what_dvc_draws():
    """docs/pipeline/graph.md holds ``dvc dag --md`` as DVC prints it for this dvc.yaml (regenerate
    the block with that command after a stage's deps or outs change)."""
    from commands import run

    page = (REPO / "docs" / "pipeline" / "graph.md").read_text()
    drawn = run("dvc", "dag", "--md", cwd=REPO)
    assert page[page.index("```mermaid"):].strip() == drawn.strip()
    assert max(map(len, page.splitlines())) <= 110  # not an 872-column ASCII drawing


def test_the_stage_lists_are_what_dvc_yaml_gives():
    """README.md and docs/pipeline/index.md show the list ``stage_list.render`` makes from dvc.yaml
    (`controlbreast stage-list` rewrites it), and the stage-by-stage table has a row per stage."""
    block = render(REPO / "dvc.yaml")
    for name in PAGES:
        page = (REPO / name).read_text()
        assert block in page, f"{name}: run `controlbreast stage-list` (dvc.yaml's stages changed)"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = (REPO / "docs" / "pipeline" / "index.md").read_text().split(END, 1)[1]
    assert sorted(name for name in stages if f"| `{name}` |" not in table) == []


def test_stages_come_after_the_stages_they_read_and_each_says_what_it_does(tmp_path):
    stages = {"report": {"deps": ["metrics/x.json"]}, "train": {"outs": ["models/a"]},
              "evaluate": {"deps": ["models"], "outs": ["metrics/x.json"]}}
    assert pipeline_order(stages) == ["train", "evaluate", "report"]
    (tmp_path / "dvc.yaml").write_text("stages:\n  train:   # fits it\n    cmd: a\n\n  score:\n    cmd: b\n")
    with pytest.raises(ConfigError, match=r"\['score'\] have no comment"):
        render(tmp_path / "dvc.yaml")
