"""The list of pipeline stages that the README and docs/pipeline/index.md show, generated from
``dvc.yaml`` so that neither can omit or misname a stage.

Each stage is listed once, in an order where every stage comes after the stages whose outputs it
reads (its deps against their outs; ties in ``dvc.yaml`` order), with its command and the comment
on its line in ``dvc.yaml`` (continued on the comment lines below it), which says what it is for.
``controlbreast stage-list`` rewrites the block between ``BEGIN`` and ``END`` in each page;
``tests/test_dvc_graph.py`` fails when a page's block is not what ``dvc.yaml`` gives.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from controlbreast.errors import ConfigError
from controlbreast.outputs import write_atomic

BEGIN = "<!-- stage list: generated from dvc.yaml by `controlbreast stage-list` -->"
END = "<!-- stage list: end -->"
PAGES = ("README.md", "docs/pipeline/index.md")
STAGE_LINE = re.compile(r"^  ([\w-]+):\s*(?:#\s*(.*))?$")
CONTINUED = re.compile(r"^\s{4,}#\s*(.*)$")


def stage_comments(text: str) -> dict[str, str]:
    """``{stage: its comment}`` from the text of ``dvc.yaml``'s ``stages:`` block ("" where none)."""
    comments: dict[str, str] = {}
    inside, current = False, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            inside, current = line.startswith("stages:"), None
            continue
        if not inside:
            continue
        if found := STAGE_LINE.match(line):
            current = found[1]
            comments[current] = (found[2] or "").strip()
        elif current and (more := CONTINUED.match(line)) and comments[current]:
            comments[current] += " " + more[1].strip()
        else:
            current = None
    return comments


def _reads(deps: list[str], outs: list[str]) -> bool:
    """Whether any dep is one of ``outs`` or lies inside (or around) one."""
    return any(dep == out or dep.startswith(out.rstrip("/") + "/") or out.startswith(dep.rstrip("/") + "/")
               for dep in deps for out in outs)


def _paths(entries: list) -> list[str]:
    return [next(iter(entry)) if isinstance(entry, dict) else str(entry) for entry in entries or []]


def pipeline_order(stages: dict[str, dict]) -> list[str]:
    """Stage names, each after every stage whose outputs it reads; ties in ``dvc.yaml`` order."""
    deps = {name: _paths(stage.get("deps")) for name, stage in stages.items()}
    outs = {name: _paths(stage.get("outs")) + _paths(stage.get("metrics")) + _paths(stage.get("plots"))
            for name, stage in stages.items()}
    before = {name: {other for other in stages if other != name and _reads(deps[name], outs[other])}
              for name in stages}
    order: list[str] = []
    while len(order) < len(stages):
        ready = [name for name in stages if name not in order and before[name] <= set(order)]
        if not ready:
            cycle = sorted(set(stages) - set(order))
            raise ConfigError(f"dvc.yaml: the stages {cycle} read each other's outputs")
        order.append(ready[0])
    return order


def render(dvc_yaml: Path) -> str:
    """The block for the pages: a table of stage, command and purpose, between the markers."""
    text = Path(dvc_yaml).read_text()
    stages = yaml.safe_load(text)["stages"]
    comments = stage_comments(text)
    missing = [name for name in stages if not comments.get(name)]
    if missing:
        raise ConfigError(f"{dvc_yaml}: stages {missing} have no comment on their line saying what they do")
    rows = [f"| `{name}` | `{stages[name]['cmd'].replace(' --params params.yaml', '')}` | {comments[name]} |"
            for name in pipeline_order(stages)]
    return "\n".join([BEGIN, "", "| stage | command | what it does |", "|---|---|---|", *rows, "", END])


def replace_block(page: str, block: str, source: str) -> str:
    """``page`` with its generated block replaced by ``block``."""
    if BEGIN not in page or END not in page:
        raise ConfigError(f"{source} lacks the stage-list markers: put the lines {BEGIN!r} and {END!r} "
                          "where the list belongs")
    return page[:page.index(BEGIN)] + block + page[page.index(END) + len(END):]


def write_pages(root: Path) -> list[str]:
    """Rewrite the block in each of ``PAGES`` under ``root``; returns the pages that changed."""
    block, changed = render(Path(root) / "dvc.yaml"), []
    for name in PAGES:
        page = Path(root) / name
        text = page.read_text()
        updated = replace_block(text, block, name)
        if updated != text:
            write_atomic(page, updated.encode())
            changed.append(name)
    return changed
