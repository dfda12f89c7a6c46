"""The answer on the first screen: every recipe's paired difference against ``real``, per real-data
fraction, on the internal test split and on every external set, judged against the same-count
control.

On an external set that lacks a class the difference is of the macro AUC over the classes it has
(``auc_ovr_macro_present``). A recipe is ``real+synthetic`` (the plain "add N generated images") or
a ``classifier.recipes`` entry (the same-count control ``real-repeat``, the label-consistency
filter, synthetic-then-real, ...). A cell is the paired difference recipe − real at the same
fraction, averaged over the training seeds with an interval over seeds and test images
(``evaluation.arms``), and, for a recipe that adds images, the same difference against the
same-count control (``vs_control``): a recipe helps only when it beats both ``real`` and the
control, which trains as many steps on the real images drawn again. Every fraction row says how
many labelled images the generator was trained on: the whole training split by default (a low-data
row then borrows the labels outside its subset through the generator), the subset itself with
``classifier.fraction_generator: subset``. ``verdict`` is the one reading of a cell for
the README, the report and the stage's output.
"""

from __future__ import annotations

from controlbreast.config import Config
from controlbreast.data.subsets import subset_ids
from controlbreast.evaluation.headline import COUNTS, MAIN, set_metric
from controlbreast.mixing import fraction_arm

INTERNAL = "test"
KEYS = ("estimate", "low", "high", "p_value", "seed_sd", "seeds")
NO_BETTER = "no better than repeating the real images"


def control_recipe(config: Config) -> str | None:
    """The same-count control: the first recipe that draws the real images again (``real:
    repeat``, no synthetic image); None when none is configured."""
    return next((name for name, recipe in config.classifier.recipes.items() if recipe.real == "repeat"), None)


def direction(interval: dict) -> str:
    """``helps`` / ``hurts`` when a difference's interval lies above / below 0, else ``no measurable
    difference``."""
    if interval.get("low") is not None and interval["low"] > 0:
        return "helps"
    if interval.get("high") is not None and interval["high"] < 0:
        return "hurts"
    return "no measurable difference"


def verdict(cell: dict, control: bool = False) -> str:
    """What a recipe − real cell says. ``helps`` needs an interval above 0 against ``real`` *and*
    against the same-count control (``vs_control``); a gain over ``real`` alone is ``no better than
    repeating the real images`` (or says that no control was measured). ``control``: the cell is
    the control's own, judged against ``real`` alone. ``identical to real`` when the interval is
    the single point 0 (the arm predicted as ``real`` did: a filtered recipe that drew nothing)."""
    if cell.get("estimate") == 0 and cell.get("low") == 0 and cell.get("high") == 0:
        return "identical to real"
    side = direction(cell)
    if side != "helps" or control:
        return side
    if "vs_control" not in cell:
        return "helps over real (no same-count control measured)"
    return "helps" if direction(cell["vs_control"]) == "helps" else NO_BETTER


def recipe_names(config: Config) -> list[str]:
    return ["real+synthetic", *config.classifier.recipes]


def _interval(found: dict, metric: str) -> dict | None:
    value = found.get(metric) or {}
    if value.get("estimate") is None:
        return None
    return {key: value[key] for key in KEYS if key in value}


def _cell(differences: dict, recipe: str, fraction: float, metric: str, control: str | None) -> dict | None:
    """Recipe − real at ``fraction`` and, where measured, recipe − control (``vs_control``)."""
    def between(other: str) -> dict | None:
        name = f"{fraction_arm(recipe, fraction)} - {fraction_arm(other, fraction)}"
        return _interval(differences.get(name, {}), metric)

    cell = between("real")
    if cell is None or control is None:
        return cell
    against = between(control)
    return cell if against is None else {**cell, "vs_control": against}


def generator_images(config: Config) -> dict[float, int]:
    """Per fraction (1 included), the labelled real images the generator its arms draw from was
    trained on: the whole training split, or the fraction's own subset with
    ``classifier.fraction_generator: subset``."""
    whole = len(subset_ids(config, 1.0))
    own = config.classifier.fraction_generator == "subset"
    return {f: len(subset_ids(config, f)) if own else whole
            for f in sorted({*config.classifier.real_fractions, 1.0})}


def recipe_table(config: Config, metrics: dict, trained_on: dict[float, int]) -> dict:
    """``{recipe: {fraction: {"real_images": n, "generator_images": m, "test": cell, "<external>":
    cell}}}`` (cells as ``_cell``; a set or fraction without both arms is left out).
    ``trained_on``: per fraction, the labelled images its generator was trained on
    (``generator_images``)."""
    sets = {INTERNAL: (metrics["differences"], MAIN),
            **{name: (found["differences"], set_metric(found))
               for name, found in metrics.get("external", {}).items()}}
    images = {f: row["real_images"] for f, row in metrics.get("data_efficiency", {}).items()}
    control = control_recipe(config)
    table = {}
    for recipe in recipe_names(config):
        rows = {}
        for fraction in sorted({*config.classifier.real_fractions, 1.0}):
            theirs = None if recipe == control else control
            cells = {name: cell for name, (differences, metric) in sets.items()
                     if (cell := _cell(differences, recipe, fraction, metric, theirs)) is not None}
            if cells:
                rows[f"{fraction:g}"] = {"real_images": images.get(f"{fraction:g}"),
                                         "generator_images": trained_on.get(fraction), **cells}
        if rows:
            table[recipe] = rows
    return table


PLOT_COLUMNS = ["arm", "recipe", "set", "fraction", "real_images", "difference", "difference_low",
                "difference_high"]


def set_names(table: dict) -> list[str]:
    """The sets (test split, external sets) the recipe table has cells on, in order."""
    return list(dict.fromkeys(name for rows in table.values() for row in rows.values()
                              for name in row if name not in COUNTS))


def plot_rows(table: dict) -> list[dict]:
    """One row per recipe, set and fraction for the plot of the difference against the number of
    real training images (``arm`` names the line: ``recipe (set)``)."""
    return [{"arm": f"{recipe} ({name})", "recipe": recipe, "set": name, "fraction": float(fraction),
             "real_images": row["real_images"], "difference": cell["estimate"], "difference_low": cell["low"],
             "difference_high": cell["high"]}
            for recipe, rows in table.items() for name in set_names({recipe: rows})
            for fraction, row in rows.items() if (cell := row.get(name))]


def summary_lines(table: dict, control: str | None) -> list[str]:
    """Plain sentences: which recipe helps where (against real and the same-count control ``control``),
    and by how much, or that none does."""
    lines = []
    for recipe, rows in table.items():
        said = [(fraction, name, cell, verdict(cell, recipe == control)) for fraction, row in rows.items()
                for name, cell in row.items() if name not in COUNTS]
        helps = [(f, name, cell) for f, name, cell, word in said if word == "helps"]
        where = "; ".join(f"{name} at {f} of the real images {cell['estimate']:+.3f} "
                          f"[{cell['low']:+.3f}, {cell['high']:+.3f}]" for f, name, cell in helps)
        counts = {word: sum(w == word for *_, w in said) for word in ("hurts", NO_BETTER)}
        role = " (the same-count control, against real)" if recipe == control else ""
        lines.append(f"{recipe}{role}: helps in {len(helps)} of {len(said)} cells, hurts in {counts['hurts']}"
                     + (f", no better than repeating the real images in {counts[NO_BETTER]}"
                        if counts[NO_BETTER] else "") + (f" ({where})" if where else ""))
    return lines
