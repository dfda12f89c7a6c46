"""The README's results at a glance, generated from ``metrics/summary.json`` so it cannot drift.

A figure typed into a README is stale after the next ``dvc repro``; this table is rendered from the
committed headline metrics (``evaluation/headline.py``) and written between two marker comments,
with the commit that last changed the metrics file, so a reader can check out exactly the run it
describes. ``tests/test_docs.py`` renders it again and fails when the README's copy differs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from controlbreast.errors import ControlBreastError
from controlbreast.evaluation.recipes import direction, set_names, verdict
from controlbreast.outputs import write_atomic
from controlbreast.report.numbers import interval

BEGIN = "<!-- results:begin (written by `controlbreast readme-results` from metrics/summary.json) -->"
END = "<!-- results:end -->"
FILES = ("README.md", "docs/index.md")  # the files that show the table


def _recipe_rows(summary: dict) -> list[str]:
    """The answer first: one table per set (test split, then each external set), a row per recipe
    and a column per real-data fraction, each cell ``recipe − real`` with its interval and the
    verdict that also weighs the same-count control (``recipes.verdict``)."""
    recipes, control = summary.get("recipes", {}), summary.get("same_count_control")
    fractions = list(dict.fromkeys(f for rows in recipes.values() for f in rows))
    rows_of = {f: row for rows in recipes.values() for f, row in rows.items()}
    lines = []
    for name in set_names(recipes):
        where = "test split" if name == "test" else f"external set {name}"
        head = " | ".join(f"{rows_of[f]['real_images']} real images ({f})" for f in fractions)
        lines += [f"| recipe − real, {where} | {head} |", "|---|" + "---|" * len(fractions)]
        for recipe, rows in recipes.items():
            cells = [f"{interval(c, sign=True)} {verdict(c, recipe == control)}"
                     if (c := rows.get(f, {}).get(name)) else "n/a" for f in fractions]
            role = " (same-count control)" if recipe == control else ""
            lines.append(f"| {recipe}{role} | " + " | ".join(cells) + " |")
        lines.append("")
    trained = sorted({row.get("generator_images") for row in rows_of.values()} - {None})
    if trained:
        lines += [f"Every fraction's synthetic images come from a generator trained on {trained[-1]} "
                  "labelled real images (the whole training split).", ""]
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
    """The paired differences on the test split that are not a recipe's against ``real`` or the
    control (those are in the recipe tables, with the verdict that weighs the control): synthetic
    only, augmentation."""
    recipes, judged = set(summary.get("recipes", {})), {"real", summary.get("same_count_control")}
    rows = [(f"{name}, test split", diff) for name, diff in summary["difference"].items()
            if not (name.split(" - ")[0] in recipes and name.split(" - ")[1] in judged)]
    return [f"| {label.replace(' - ', ' − ')} | {interval(diff, sign=True)} | {seed_sd(diff)} | "
            f"{direction(diff)} |" for label, diff in rows]


def seed_sd(value: dict) -> str:
    """The between-seed spread of a difference, ``±0.012``; n/a where absent."""
    return "n/a" if value.get("seed_sd") is None else f"±{value['seed_sd']:.3f}"


def results_table(summary: dict, commit: str) -> str:
    """The block between the markers (markers included), from a ``headline()`` summary.

    Shape of ``summary``: ``{"recipes": {...}, "same_count_control"?: name, "test_images": n,
    "auc": {arm: x}, "difference": {"a - b": {estimate, low, high, seed_sd}}, "external"?: {...}}``,
    as ``metrics/summary.json`` holds it.
    """
    external = summary.get("external", {})
    head = ["test split"] + [f"{name} (external)" for name in external]
    lines = [BEGIN, "",
             "Each recipe against `real` at the same fraction of the real training images: the paired "
             "difference of the macro one-vs-rest AUC, averaged over the classifier seeds, with a 95% "
             "interval over seeds and test images. A recipe that adds images helps only when it also "
             "beats the same-count control:", "",
             *_recipe_rows(summary),
             f"Test-split macro one-vs-rest AUC of each arm ({summary['test_images']} real images, mean "
             "over seeds), and the other paired differences with their between-seed spread; from "
             f"`metrics/summary.json` at commit `{commit}` (`dvc metrics show metrics/summary.json`).", "",
             "| arm | " + " | ".join(head) + " |", "|---|" + "---|" * len(head), *_arm_rows(summary), "",
             "| paired difference | AUC [95% interval] | between seeds | verdict |", "|---|---|---|---|",
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
