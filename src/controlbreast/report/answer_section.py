"""The report's first screen: which recipe, if any, helps, where, and by how much.

One table per set (the internal test split, then each external set): recipes × real-data fractions,
each cell the paired difference recipe − real of the macro AUC, averaged over the training seeds,
with its interval over seeds and test images and the verdict that also weighs the same-count
control (``recipes.verdict``); then the plot of those differences against the number of real
training images (``metrics/classifier.json``'s ``recipes``).
"""

from __future__ import annotations

from controlbreast.evaluation.figures import recipe_figure
from controlbreast.evaluation.recipes import plot_rows, set_names, summary_lines, verdict
from controlbreast.report.document import Picture, ReportSection, Table, Text
from controlbreast.report.figures import png
from controlbreast.report.inputs import Inputs
from controlbreast.report.numbers import interval, num


def _cell_text(cell: dict | None, control: bool) -> str:
    return "n/a" if not cell else f"{interval(cell, sign=True)} ({verdict(cell, control)})"


def set_table(table: dict, name: str, control: str | None) -> Table:
    """Recipes (rows; the same-count ``control`` marked) × fractions (columns, with their real-image
    counts and the generator's) on one set."""
    fractions = list(dict.fromkeys(f for rows in table.values() for f in rows))
    counts = {f: rows[f] for rows in table.values() for f in rows}
    columns = ("recipe − real", *(f"{f} ({num(counts[f].get('real_images'))} real; generator trained on "
                                  f"{num(counts[f].get('generator_images'))})" for f in fractions))
    rows = tuple((recipe + (" (same-count control)" if recipe == control else ""),
                  *(_cell_text(found.get(f, {}).get(name), recipe == control) for f in fractions))
                 for recipe, found in table.items())
    where = "the internal test split" if name == "test" else f"external set {name}"
    return Table(f"Macro AUC, recipe − real on {where} (mean over seeds, 95% interval over seeds and "
                 "test images)", columns, rows)


def answer_section(inputs: Inputs) -> ReportSection:
    """The recipe tables, the sentence per recipe and the plot; a note when nothing was measured."""
    table = (inputs.metrics.get("classifier") or {}).get("recipes")
    if not table:
        return ReportSection("answer", "The answer", [Text("No recipe was evaluated "
                                                           "(metrics/classifier.json has no recipes).",
                                                           note=True)])
    control = inputs.metrics["classifier"].get("same_count_control")
    blocks: list = [Text(line, key=True) for line in summary_lines(table, control)]
    blocks += [set_table(table, name, control) for name in set_names(table)]
    figure = recipe_figure(plot_rows(table), "Recipe − real, macro AUC (mean over seeds)")
    blocks.append(Picture("recipes.png", png(figure), "One panel per recipe: its difference from real "
                          "(dot) and 95% interval over seeds and test images (whisker) at each number of "
                          "real training images, one colour per test set; dashed: no difference."))
    return ReportSection("answer", "The answer: do synthetic images help?", blocks)
