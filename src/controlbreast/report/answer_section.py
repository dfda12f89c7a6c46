"""The report's first screen: which recipe, if any, helps, where, and by how much.

One table per set (the internal test split, then each external set): recipes × real-data fractions,
each cell the paired difference recipe − real of the seed-averaged macro AUC with its interval and a
verdict; then the plot of those differences against the number of real training images, one line
per recipe and set with its band (``metrics/classifier.json``'s ``recipes``).
"""

from __future__ import annotations

from controlbreast.evaluation.figures import efficiency_figure
from controlbreast.evaluation.recipes import plot_rows, summary_lines, verdict
from controlbreast.report.document import Picture, Section, Table, Text
from controlbreast.report.figures import png
from controlbreast.report.inputs import Inputs
from controlbreast.report.numbers import interval


def _sets(table: dict) -> list[str]:
    return list(dict.fromkeys(name for rows in table.values() for row in rows.values()
                              for name in row if name != "real_images"))


def _cell(cell: dict | None) -> str:
    return "n/a" if not cell else f"{interval(cell, sign=True)} ({verdict(cell)})"


def set_table(table: dict, name: str) -> Table:
    """Recipes (rows) × fractions (columns, with their real-image counts) on one set."""
    fractions = list(dict.fromkeys(f for rows in table.values() for f in rows))
    images = {f: rows[f]["real_images"] for rows in table.values() for f in rows}
    columns = ("recipe − real", *(f"{f} ({images[f]} real)" for f in fractions))
    rows = tuple((recipe, *(_cell(found.get(f, {}).get(name)) for f in fractions))
                 for recipe, found in table.items())
    where = "the internal test split" if name == "test" else f"external set {name}"
    return Table(f"Macro AUC, recipe − real on {where} (paired, 95% interval)", columns, rows)


def answer_section(inputs: Inputs) -> Section:
    """The recipe tables, the sentence per recipe and the plot; a note when nothing was measured."""
    table = (inputs.metrics.get("classifier") or {}).get("recipes")
    if not table:
        return Section("answer", "The answer", [Text("No recipe was evaluated (metrics/classifier.json has "
                                                     "no recipes).", note=True)])
    blocks: list = [Text(line, key=True) for line in summary_lines(table)]
    blocks += [set_table(table, name) for name in _sets(table)]
    figure = efficiency_figure(plot_rows(table), "difference", "Recipe − real, macro AUC",
                               "paired difference, 95% interval", reference=0.0)
    blocks.append(Picture("recipes.png", png(figure), "Each recipe's difference from real against the "
                          "number of real training images (band: 95% interval; dashed: no difference)."))
    return Section("answer", "The answer: do synthetic images help?", blocks)
