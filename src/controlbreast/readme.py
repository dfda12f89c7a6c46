"""The README's results at a glance, generated from ``metrics/summary.json`` so it cannot drift.

A figure typed into a README is stale after the next ``dvc repro``; this table is rendered from the
committed headline metrics (``evaluation/headline.py``) and written between two marker comments,
with the commit that last changed the metrics file, so a reader can check out exactly the run it
describes. ``tests/test_docs.py`` renders it again and fails when the README's copy differs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.recipes import verdict
from controlbreast.outputs import write_atomic
from controlbreast.report.numbers import interval

BEGIN = "<!-- results:begin (written by `controlbreast readme-results` from metrics/summary.json) -->"
END = "<!-- results:end -->"
PRIMARY = "real+synthetic - real"
FILES = ("README.md", "docs/index.md")  # the files that show the table
COMMIT = re.compile(r"at commit `([0-9a-f]{7,40})`")


def _recipe_rows(summary: dict) -> list[str]:
    """The answer first: one table per set (test split, then each external set), a row per recipe
    and a column per real-data fraction, each cell ``recipe − real`` with its interval and verdict."""
    recipes = summary.get("recipes", {})
    fractions = list(dict.fromkeys(f for rows in recipes.values() for f in rows))
    sets = list(dict.fromkeys(s for rows in recipes.values() for row in rows.values() for s in row
                              if s != "real_images"))
    lines = []
    for name in sets:
        images = {f: rows[f]["real_images"] for rows in recipes.values() for f in rows}
        where = "test split" if name == "test" else f"external set {name}"
        head = " | ".join(f"{images[f]} real images ({f})" for f in fractions)
        lines += [f"| recipe − real, {where} | {head} |", "|---|" + "---|" * len(fractions)]
        for recipe, rows in recipes.items():
            cells = [f"{interval(c, sign=True)} {verdict(c)}" if (c := rows.get(f, {}).get(name)) else "n/a"
                     for f in fractions]
            lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _arm_rows(summary: dict) -> list[str]:
    """One row per arm: its test-split AUC, then its AUC on each external set (blank where absent)."""
    external = summary.get("external", {})
    rows = []
    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for arm, auc in summary["auc"].items():
        cells = [cell(auc)] + [cell((found.get("auc") or found.get("auc_ovr_macro_present") or {}).get(arm))
                               for found in external.values()]
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return rows


def _difference_rows(summary: dict) -> list[str]:
    """The paired differences: each on the test split, the primary one per real-data fraction and per
    external set, with the interval's verdict."""
    rows = [(f"{name}, test split", diff) for name, diff in summary["difference"].items()]
    rows += [(f"{PRIMARY}, {row['real_images']} real training images (fraction {fraction})", row[PRIMARY])
             for fraction, row in summary.get("fraction", {}).items() if float(fraction) != 1]
    rows += [(f"{PRIMARY}, external set {name} ({found['images']} images)", found[PRIMARY])
             for name, found in summary.get("external", {}).items() if PRIMARY in found]
    return [f"| {label.replace(' - ', ' − ')} | {interval(diff, sign=True)} | {verdict(diff)} |"
            for label, diff in rows]


def results_table(summary: dict, commit: str) -> str:
    """The block between the markers (markers included), from a ``headline()`` summary.

    Shape of ``summary``: ``{"test_images": n, "auc": {arm: x}, "difference": {"a - b": {estimate,
    low, high}}, "fraction"?: {...}, "external"?: {...}}``, as ``metrics/summary.json`` holds it.
    """
    external = summary.get("external", {})
    head = ["test split"] + [f"{name} (external)" for name in external]
    lines = [BEGIN, "",
             "Each recipe against `real` at the same fraction of the real training images (paired "
             "difference of the seed-averaged macro one-vs-rest AUC, 95% bootstrap interval):", "",
             *_recipe_rows(summary),
             f"Test-split macro one-vs-rest AUC of each arm ({summary['test_images']} real images, "
             "seed-averaged), and the paired differences with 95% bootstrap intervals; from "
             f"`metrics/summary.json` at commit `{commit}` (`dvc metrics show metrics/summary.json`).", "",
             "| arm | " + " | ".join(head) + " |", "|---|" + "---|" * len(head), *_arm_rows(summary), "",
             "| paired difference | AUC [95% interval] | verdict |", "|---|---|---|",
             *_difference_rows(summary), "", END]
    return "\n".join(lines)


def replace_block(text: str, block: str, source: str = "README.md") -> str:
    """``text`` with the part between the markers (inclusive) replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ControlBreastError(f"{source} lacks the results markers: put the lines {BEGIN!r} and "
                                 f"{END!r} where the table belongs, then run `controlbreast readme-results`")
    return text[:start] + block + text[end + len(END):]


def readme_block(text: str) -> str:
    """The README's current block between the markers (inclusive)."""
    return text[text.index(BEGIN):text.index(END) + len(END)]


def readme_commit(text: str) -> str:
    """The commit the README's block names."""
    found = COMMIT.search(readme_block(text))
    if not found:
        raise ControlBreastError("the README's results block names no commit")
    return found[1]


def _git(root: Path, *args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise ControlBreastError(f"git {' '.join(args)} failed in {root}: {error}") from None
    return result.stdout.decode()


def metrics_commit(root: Path, metrics: str = "metrics/summary.json") -> str:
    """The commit (10 hex digits) that last changed ``metrics``; an error while the file differs from
    that commit's copy (its figures come from no commit yet)."""
    commit = _git(root, "log", "-1", "--format=%H", "--", metrics).strip()[:10]
    if not commit:
        raise ControlBreastError(f"{metrics} was never committed: commit it (with dvc.lock) first")
    if _git(root, "show", f"{commit}:{metrics}") != (root / metrics).read_text():
        raise ControlBreastError(f"{metrics} has uncommitted changes: commit it (with dvc.lock), then "
                                 "run `controlbreast readme-results`, so the table can name its commit")
    return commit


def update_results(root: Path, files: tuple[str, ...] = FILES, metrics: str = "metrics/summary.json"
                   ) -> list[str]:
    """Rewrite the results block of each of ``files`` from the committed metrics; the files changed."""
    if not (root / metrics).is_file():
        raise ControlBreastError(f"{metrics} is absent: `dvc repro evaluate` writes it")
    block = results_table(json.loads((root / metrics).read_text()), metrics_commit(root, metrics))
    changed = []
    for name in files:
        text = (root / name).read_text()
        updated = replace_block(text, block, name)
        if updated != text:
            write_atomic(root / name, updated.encode())
            changed.append(name)
    return changed
