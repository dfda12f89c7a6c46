"""Matplotlib figures of the arms' test curves, for MLflow (``mlflow.log_figure``).

Built from the same rows that DVC plots read (``evaluation.arms.curves``), with the object API
(``matplotlib.figure.Figure``): no pyplot, no global figure state, no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure


def _by_arm(rows: Sequence[dict], x: str, y: str) -> dict[str, tuple[list[float], list[float]]]:
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for row in sorted(rows, key=lambda r: (r["arm"], r["point"])):
        xs, ys = lines.setdefault(row["arm"], ([], []))
        xs.append(float(row[x]))
        ys.append(float(row[y]))
    return lines


def curve_figure(rows: Sequence[dict], x: str, y: str, title: str, x_label: str, y_label: str,
                 legend: dict[str, str] | None = None) -> Figure:
    """One line per arm of ``rows`` (``arm``, ``point`` and the ``x``/``y`` columns) on the unit
    square, with the diagonal (chance for ROC, perfect calibration for reliability)."""
    figure = Figure(figsize=(4.5, 4.5), dpi=100)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    for arm, (xs, ys) in _by_arm(rows, x, y).items():
        axes.plot(xs, ys, marker="." if len(xs) < 30 else None, label=(legend or {}).get(arm, arm))
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=x_label, ylabel=y_label, title=title,
             aspect="equal")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return figure


def efficiency_figure(rows: Sequence[dict], metric: str, title: str, y_label: str) -> Figure:
    """AUC (``metric``, with its ``_low``/``_high`` interval as a band) against the number of real
    training images, one line per arm: where on the curve synthetic images help, if anywhere. The
    legend sits below the axes, two entries a row, so no line or band hides behind it."""
    lines = list(dict.fromkeys(row["arm"] for row in rows))
    figure = Figure(figsize=(5.5, 4.0 + 0.22 * -(-len(lines) // 2)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for arm in lines:
        points = sorted((r for r in rows if r["arm"] == arm and None not in (r[metric], r["real_images"])),
                        key=lambda r: r["real_images"])
        xs = [r["real_images"] for r in points]
        line, = axes.plot(xs, [r[metric] for r in points], marker="o", label=arm)
        axes.fill_between(xs, [r[f"{metric}_low"] for r in points], [r[f"{metric}_high"] for r in points],
                          color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set(xlabel="real training images", ylabel=y_label, title=title)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return figure


def recipe_figure(rows: Sequence[dict], title: str) -> Figure:
    """Small multiples of the recipe table (``recipes.plot_rows``): one panel per recipe, the
    difference from ``real`` (dot) and its 95% interval (whisker) at each number of real training
    images, one colour per set, nudged apart so no whisker hides another; dashed: no difference."""
    recipes = list(dict.fromkeys(row["recipe"] for row in rows))
    sets = list(dict.fromkeys(row["set"] for row in rows))
    columns = min(3, max(len(recipes), 1))
    shape = (-(-len(recipes) // columns), columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * shape[0] + 0.6), dpi=100, layout="constrained")
    panels = figure.subplots(*shape, sharex=True, sharey=True, squeeze=False).ravel()
    colours = {name: f"C{k}" for k, name in enumerate(sets)}
    counts = sorted({row["real_images"] for row in rows if row["real_images"] is not None})
    step = 0.025 * (max(counts) if counts else 1)
    for axes, recipe in zip(panels, recipes, strict=False):
        axes.axhline(0.0, color="0.5", linestyle="--", linewidth=1)
        for k, name in enumerate(sets):
            points = [r for r in rows if (r["recipe"], r["set"]) == (recipe, name)
                      and None not in (r["difference"], r["real_images"])]
            xs = [r["real_images"] + step * (k - (len(sets) - 1) / 2) for r in points]
            ys = [r["difference"] for r in points]
            whiskers = [[y - r["difference_low"] for y, r in zip(ys, points, strict=True)],
                        [r["difference_high"] - y for y, r in zip(ys, points, strict=True)]]
            axes.errorbar(xs, ys, yerr=whiskers, fmt="o", color=colours[name], capsize=3, markersize=4,
                          label=name if axes is panels[0] else None)
        axes.set_title(recipe, fontsize="medium")
        axes.set_xticks(counts)
        axes.grid(alpha=0.3)
    for k, axes in enumerate(panels):
        if k >= len(recipes):
            axes.set_visible(False)
        elif k + columns >= len(recipes):  # nothing drawn below it: it carries the x label
            axes.set_xlabel("real training images")
            axes.xaxis.set_tick_params(labelbottom=True)
    figure.supylabel("recipe − real, macro AUC")
    figure.suptitle(title)
    if sets:
        figure.legend(loc="outside lower center", ncols=min(len(sets), 3), fontsize="small", frameon=False)
    return figure
