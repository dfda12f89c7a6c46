"""The answer on the first screen: every recipe's paired difference against ``real``, per real-data
fraction, on the internal test split and on every external set.

On an external set that lacks a class the difference is of the macro AUC over the classes it has
(``auc_ovr_macro_present``). A recipe is ``real+synthetic`` (the plain "add N generated images") or
a ``classifier.recipes`` entry
(the same-count control ``real-repeat``, the label-consistency filter, synthetic-then-real, ...). A
cell is the paired bootstrap difference of the seed ensembles' macro AUC, recipe − real at the same
fraction (``evaluation.arms``); ``verdict`` reads its interval: ``helps`` when it lies above 0,
``hurts`` below, otherwise ``no measurable difference``. A gain counts where it holds across
fractions and sets, not in one cell.
"""

from __future__ import annotations

from controlbreast.config import Config
from controlbreast.evaluation.headline import MAIN, set_metric
from controlbreast.mixing import fraction_arm

INTERNAL = "test"


def verdict(interval: dict) -> str:
    """``helps`` / ``hurts`` / ``no measurable difference`` from a difference's interval;
    ``identical to real`` when every resample gives 0 (the arm predicted as ``real`` did: a
    filtered recipe that drew no synthetic image trains exactly the real arm)."""
    if interval.get("estimate") == 0 and interval["low"] == 0 and interval["high"] == 0:
        return "identical to real"
    if interval["low"] is not None and interval["low"] > 0:
        return "helps"
    if interval["high"] is not None and interval["high"] < 0:
        return "hurts"
    return "no measurable difference"


def recipe_names(config: Config) -> list[str]:
    return ["real+synthetic", *config.classifier.recipes]


def _cell(differences: dict, recipe: str, fraction: float, metric: str) -> dict | None:
    found = differences.get(f"{fraction_arm(recipe, fraction)} - {fraction_arm('real', fraction)}", {})
    if metric not in found:
        return None
    interval = {key: found[metric].get(key) for key in ("estimate", "low", "high", "p_value")}
    if interval["estimate"] is None:
        return None
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in interval.items()}


def recipe_table(config: Config, metrics: dict) -> dict:
    """``{recipe: {fraction: {"real_images": n, "test": cell, "<external>": cell}}}`` (cells as
    ``_cell``; a set or fraction without both arms is left out)."""
    sets = {INTERNAL: (metrics["differences"], MAIN),
            **{name: (found["differences"], set_metric(found))
               for name, found in metrics.get("external", {}).items()}}
    images = {f: row["real_images"] for f, row in metrics.get("data_efficiency", {}).items()}
    table = {}
    for recipe in recipe_names(config):
        rows = {}
        for fraction in sorted(config.classifier.real_fractions):
            cells = {name: cell for name, (differences, metric) in sets.items()
                     if (cell := _cell(differences, recipe, fraction, metric)) is not None}
            if cells:
                rows[f"{fraction:g}"] = {"real_images": images.get(f"{fraction:g}"), **cells}
        if rows:
            table[recipe] = rows
    return table


PLOT_COLUMNS = ["arm", "recipe", "set", "fraction", "real_images", "difference", "difference_low",
                "difference_high"]


def plot_rows(table: dict) -> list[dict]:
    """One row per recipe, set and fraction for the plot of the difference against the number of
    real training images (``arm`` names the line: ``recipe (set)``)."""
    return [{"arm": f"{recipe} ({name})", "recipe": recipe, "set": name, "fraction": float(fraction),
             "real_images": row["real_images"], "difference": cell["estimate"], "difference_low": cell["low"],
             "difference_high": cell["high"]}
            for recipe, rows in table.items() for name in _sets(rows)
            for fraction, row in rows.items() if (cell := row.get(name))]


def _sets(rows: dict) -> list[str]:
    return list(dict.fromkeys(name for row in rows.values() for name in row if name != "real_images"))


def summary_lines(table: dict) -> list[str]:
    """Plain sentences: which recipe helps where, and by how much (or that none does)."""
    lines = []
    for recipe, rows in table.items():
        helps = [(fraction, name, cell) for fraction, row in rows.items() for name, cell in row.items()
                 if name != "real_images" and verdict(cell) == "helps"]
        hurts = sum(verdict(cell) == "hurts" for row in rows.values() for name, cell in row.items()
                    if name != "real_images")
        cells = sum(len(row) - 1 for row in rows.values())
        where = "; ".join(f"{name} at {fraction} of the real images {cell['estimate']:+.3f} "
                          f"[{cell['low']:+.3f}, {cell['high']:+.3f}]" for fraction, name, cell in helps)
        lines.append(f"{recipe}: helps in {len(helps)} of {cells} cells, hurts in {hurts}"
                     + (f" ({where})" if where else ""))
    return lines
