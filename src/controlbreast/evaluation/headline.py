"""The headline of ``metrics/classifier.json``: a few numbers that read well in a terminal.

``classifier.json`` holds every arm, seed, metric and interval (well over a thousand values), so
``dvc metrics show`` on it prints one unreadable row. ``metrics/summary.json`` keeps only what a
reader asks first, all on the test split's seed-averaged models and the main metric (macro
one-vs-rest AUC): each full-data arm's AUC, and each paired difference with its interval, internal,
per real-data fraction and per external set. ``dvc metrics show metrics/summary.json`` prints it;
``dvc metrics diff`` compares it between commits like any metrics file.
"""

from __future__ import annotations

MAIN = "auc_ovr_macro"
PRIMARY = "real+synthetic - real"


def _difference(result: dict) -> dict[str, float]:
    """``{estimate, low, high}`` of one paired difference (its main metric), 3 decimals."""
    found = result[MAIN]
    return {key: round(found[key], 3) for key in ("estimate", "low", "high")}


def _recipes(table: dict) -> dict:
    """The recipe × fraction table (``evaluation.recipes``) as numbers: ``{estimate, low, high}`` per
    set, 3 decimals (the verdicts and p-values stay in ``classifier.json``)."""
    return {recipe: {fraction: {name: value if name == "real_images" else
                                {key: round(value[key], 3) for key in ("estimate", "low", "high")
                                 if value[key] is not None}
                                for name, value in row.items()}
                     for fraction, row in rows.items()}
            for recipe, rows in table.items()}


def _arms(arms: dict) -> dict[str, float]:
    """Each arm's seed-averaged AUC; arms of a real-data fraction (``arm@f``) are left to ``fractions``."""
    return {arm: round(result["ensemble"][MAIN]["estimate"], 3)
            for arm, result in arms.items() if "@" not in arm}


def _differences(differences: dict) -> dict[str, dict[str, float]]:
    return {name: _difference(result) for name, result in differences.items()
            if "@" not in name and MAIN in result}


def headline(metrics: dict) -> dict:
    """The summary of ``evaluate_arms``' metrics (module docstring); every leaf a number.

    It opens with the recipe × fraction table (``evaluation.recipes``). Shape: ``{"recipes":
    {recipe: {fraction: {"real_images": n, set: {estimate, low, high}}}},
    "test_images": n, "auc": {arm: x}, "difference": {"a - b": {estimate, low, high}},
    "fraction": {f: {"real_images": n, "real+synthetic - real": {...}}},
    "external": {name: {"images": n, "auc": {...}, "real+synthetic - real": {...}}}}``,
    each part present only where ``metrics`` has it.
    """
    summary = {"recipes": _recipes(metrics.get("recipes", {})), "test_images": metrics["test_images"],
               "auc": _arms(metrics["arms"]),
               "difference": _differences(metrics["differences"])}
    fractions = {fraction: {"real_images": row["real_images"], PRIMARY: _difference(row[PRIMARY])}
                 for fraction, row in metrics.get("data_efficiency", {}).items()
                 if PRIMARY in row and MAIN in row[PRIMARY]}
    if fractions:
        summary["fraction"] = fractions
    external = {}
    for name, found in metrics.get("external", {}).items():
        external[name] = {"images": found["images"], "auc": _arms(found["arms"])}
        if MAIN in found["differences"].get(PRIMARY, {}):
            external[name][PRIMARY] = _difference(found["differences"][PRIMARY])
    if external:
        summary["external"] = external
    return summary
