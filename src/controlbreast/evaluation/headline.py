"""The headline of ``metrics/classifier.json``: a few numbers that read well in a terminal.

``classifier.json`` holds every arm, seed, metric and interval (well over a thousand values), so
``dvc metrics show`` on it prints one unreadable row. ``metrics/summary.json`` keeps only what a
reader asks first, all on the one headline metric (macro one-vs-rest AUC) averaged over the training
seeds: each full-data arm's AUC, and each paired difference with its interval (over seeds and test
images) and between-seed spread, internal, per real-data fraction and per external set. An external
set that lacks a class (BUS-BRA has no normal images) has no macro AUC over every class: its entry
gives ``auc_ovr_macro_present``, the average over the classes it has, which ``images_per_class``
names (the classes with images). ``dvc metrics show metrics/summary.json`` prints it; ``dvc metrics
diff`` compares it between commits like any metrics file. ``travel`` says in words whether a
difference held off-site.
"""

from __future__ import annotations

MAIN = "auc_ovr_macro"
PRESENT = "auc_ovr_macro_present"
PRIMARY = "real+synthetic - real"
BOUNDS = ("estimate", "low", "high", "seed_sd")
COUNTS = ("real_images", "generator_images")


def _round(value: float | None) -> float | None:
    """Every figure of the summary is rounded here, once, from the unrounded value."""
    return None if value is None else round(value, 3)


def _difference(found: dict | None) -> dict[str, float | None]:
    """``{estimate, low, high, seed_sd}`` of one paired difference, 3 decimals."""
    found = found or {}
    return {key: _round(found.get(key)) for key in BOUNDS}


def _recipe_cell(cell: dict) -> dict:
    """A recipe − real cell and, where measured, its difference from the same-count control."""
    return {**_difference(cell), **({"vs_control": _difference(cell["vs_control"])}
                                    if "vs_control" in cell else {})}


def _recipes(table: dict) -> dict:
    """The recipe × fraction table (``evaluation.recipes``) as numbers (the verdicts and p-values stay
    in ``classifier.json``)."""
    return {recipe: {fraction: {name: value if name in COUNTS else _recipe_cell(value)
                                for name, value in row.items()}
                     for fraction, row in rows.items()}
            for recipe, rows in table.items()}


def set_metric(found: dict) -> str:
    """``MAIN``, or ``PRESENT`` for a set whose macro AUC over every class is null (a class absent)."""
    means = [result["seed_mean"] for result in found["arms"].values()]
    if any((m.get(MAIN) or {}).get("estimate") is not None for m in means):
        return MAIN
    return PRESENT if any(PRESENT in m for m in means) else MAIN


def _arms(arms: dict, metric: str) -> dict[str, float | None]:
    """Each arm's ``metric`` averaged over its seeds; arms of a real-data fraction (``arm@f``) are
    left to ``fractions``."""
    return {arm: _round((result["seed_mean"].get(metric) or {}).get("estimate"))
            for arm, result in arms.items() if "@" not in arm}


def _differences(differences: dict, metric: str) -> dict[str, dict[str, float | None]]:
    return {name: _difference(result.get(metric)) for name, result in differences.items()
            if "@" not in name and metric in result}


def _external(found: dict) -> dict:
    """One external set's entry: its size per class, each arm's AUC and the primary difference."""
    metric = set_metric(found)
    entry = {"images": found["images"], "images_per_class": found.get("images_per_class", {}),
             "auc" if metric == MAIN else PRESENT: _arms(found["arms"], metric)}
    if metric in found["differences"].get(PRIMARY, {}):
        entry[PRIMARY] = _difference(found["differences"][PRIMARY][metric])
    return entry


def headline(metrics: dict) -> dict:
    """The summary of ``evaluate_arms``' metrics (module docstring); every leaf a number (null
    where the metric is undefined on that set), but the name of the same-count control.

    It opens with the recipe × fraction table (``evaluation.recipes``). Shape: ``{"recipes":
    {recipe: {fraction: {"real_images": n, "generator_images": m, set: {estimate, low, high,
    seed_sd, "vs_control"?: {...}}}}}, "same_count_control"?: name, "test_images": n, "auc": {arm:
    x}, "difference": {"a - b": {estimate, low, high, seed_sd}}, "fraction": {f: {"real_images": n,
    "real+synthetic - real": {...}}}, "external": {name: {"images": n, "images_per_class": {c: n},
    "auc" (or "auc_ovr_macro_present"): {...}, "real+synthetic - real": {...}}}}``, each part
    present only where ``metrics`` has it.
    """
    metric = set_metric(metrics) if metrics["arms"] else MAIN
    summary = {"recipes": _recipes(metrics.get("recipes", {})),
               **({"same_count_control": metrics["same_count_control"]}
                  if "same_count_control" in metrics else {}),
               "test_images": metrics["test_images"], "auc": _arms(metrics["arms"], metric),
               "difference": _differences(metrics["differences"], metric)}
    fractions = {fraction: {"real_images": row["real_images"], PRIMARY: _difference(row[PRIMARY][MAIN])}
                 for fraction, row in metrics.get("data_efficiency", {}).items()
                 if PRIMARY in row and MAIN in row[PRIMARY]}
    if fractions:
        summary["fraction"] = fractions
    external = {name: _external(found) for name, found in metrics.get("external", {}).items()}
    if external:
        summary["external"] = external
    return summary


def effect(value: dict | None) -> str | None:
    """``gain``, ``loss`` (the interval of a difference excludes zero on that side), ``none``, or
    None when the difference was not measured."""
    if not isinstance(value, dict) or value.get("estimate") is None:
        return None
    if value.get("low") is not None and value["low"] > 0:
        return "gain"
    if value.get("high") is not None and value["high"] < 0:
        return "loss"
    return "none"


TRAVEL = {("gain", "gain"): "the gain travelled: measurable on both",
          ("gain", "none"): "the gain did not travel: measurable internally, within noise here",
          ("gain", "loss"): "the gain reversed: measurable internally, a measurable loss here",
          ("loss", "loss"): "the loss travelled: measurable on both",
          ("loss", "none"): "the internal loss is within noise here",
          ("loss", "gain"): "reversed: a loss internally, a measurable gain here",
          ("none", "gain"): "a measurable gain here that the internal test split did not show",
          ("none", "none"): "no measurable effect on either",
          ("none", "loss"): "a measurable loss here that the internal test split did not show"}


def travel(internal: dict | None, external: dict | None) -> str:
    """Whether a paired difference measured on the internal test split held on an external set."""
    inside, outside = effect(internal), effect(external)
    if outside is None:
        return "not measurable on this set"
    if inside is None:
        return {"gain": "a measurable gain", "loss": "a measurable loss",
                "none": "no measurable effect"}[outside] + " (not measured internally)"
    return TRAVEL[inside, outside]
