"""The report's matplotlib figures, as PNG bytes.

Object API only (``Figure``, no pyplot: no global state, no display). Every axis is labelled with
its unit, every class and arm takes its colour from ``palette``, and legends sit outside the data
or in an empty corner so no text overlaps a curve.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from controlbreast.report.inputs import Example
from controlbreast.report.palette import arm_colour, class_colours

SPLITS = ("train", "val", "test")
DPI = 100
TITLE_WIDTH = 44  # characters of a title line over a 4.8-inch square plot


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (tight layout first, so labels are not cut)."""
    buffer = io.BytesIO()
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def class_count_figure(manifest: Sequence[dict], classes: Sequence[str]) -> bytes:
    """Grouped bars: images per split (x) and class (colour), each bar labelled with its count."""
    figure = Figure(figsize=(6, 3.4))
    axes = figure.add_subplot()
    colours, width = class_colours(classes), 0.8 / max(len(classes), 1)
    for k, name in enumerate(classes):
        counts = [sum(r["label"] == name and r["split"] == s for r in manifest) for s in SPLITS]
        bars = axes.bar(np.arange(len(SPLITS)) + (k - (len(classes) - 1) / 2) * width, counts, width,
                        label=name, color=colours[name], edgecolor="0.3", linewidth=0.5)
        axes.bar_label(bars, fontsize=8, padding=2)
    axes.set_xticks(range(len(SPLITS)), SPLITS)
    axes.set(xlabel="split", ylabel="images (count)", title="Prepared images per split and class")
    axes.margins(y=0.15)
    axes.legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return png(figure)


def _lines(rows: Sequence[dict], x: str, y: str) -> dict[str, tuple[list[float], list[float]]]:
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for row in sorted(rows, key=lambda r: (r["arm"], int(r["point"]))):
        xs, ys = lines.setdefault(row["arm"], ([], []))
        xs.append(float(row[x]))
        ys.append(float(row[y]))
    return lines


def arm_curves(rows: Sequence[dict], x: str, y: str, title: str, labels: tuple[str, str],
               legend: dict[str, str], diagonal: str) -> bytes:
    """One line per arm on the unit square with the diagonal (chance for ROC, perfect
    calibration for reliability); ``legend`` names each arm (with its AUC). A title longer than
    the square is wide (an external set's name) wraps instead of being cut at the figure's edge."""
    figure = Figure(figsize=(4.8, 4.6))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label=diagonal)
    for arm, (xs, ys) in _lines(rows, x, y).items():
        axes.plot(xs, ys, color=arm_colour(arm), linewidth=2, marker="o" if len(xs) < 15 else None,
                  markersize=3, label=legend.get(arm, arm))
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=labels[0], ylabel=labels[1], aspect="equal",
             title="\n".join(textwrap.wrap(title, TITLE_WIDTH)))
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    return png(figure)


def training_curves(rows: Sequence[dict]) -> bytes:
    """Training loss and validation macro AUC by epoch: one colour per arm, one line per seed."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    loss, auc = figure.subplots(1, 2)
    seen: set[str] = set()
    for (arm, _seed), epochs in _by_run(rows).items():
        label = arm if arm not in seen else None
        seen.add(arm)
        x = [int(r["epoch"]) for r in epochs]
        loss.plot(x, [float(r["train_loss"]) for r in epochs], color=arm_colour(arm), label=label, marker=".")
        auc.plot(x, [float(r["val_auc"]) for r in epochs], color=arm_colour(arm), marker=".")
    loss.set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)", title="Training loss")
    auc.set(xlabel="epoch", ylabel="validation macro AUC (0-1)", title="Validation AUC")
    for axes in (loss, auc):
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.legend(title="arm (one line per seed)", loc="outside right center", frameon=False)
    return png(figure)


def _by_run(rows: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    runs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        runs.setdefault((row["arm"], row["seed"]), []).append(row)
    return {key: sorted(value, key=lambda r: int(r["epoch"])) for key, value in runs.items()}


def data_efficiency(table: dict, metric: str) -> bytes:
    """Test ``metric`` (with its interval) against real training images, one line per arm."""
    figure = Figure(figsize=(6, 3.8))
    axes = figure.add_subplot()
    entries = sorted(table.values(), key=lambda e: e.get("real_images", 0))
    for arm in ("real", "real+synthetic"):
        points = [(e["real_images"], e[arm][metric]) for e in entries if metric in e.get(arm, {})]
        points = [(n, v) for n, v in points if v.get("estimate") is not None]
        if points:
            n = [p[0] for p in points]
            est = np.array([p[1]["estimate"] for p in points])
            err = np.array([[e - (p[1]["low"] or e), (p[1]["high"] or e) - e]
                            for p, e in zip(points, est, strict=True)]).T
            axes.errorbar(n, est, yerr=err, color=arm_colour(arm), marker="o", capsize=3, label=arm)
    axes.set(xlabel="real training images (count)", ylabel=f"test {metric.replace('_', ' ')} (0-1)",
             title="Data efficiency (95% intervals)")
    axes.legend(title="arm", loc="lower right", frameon=False)
    return png(figure)


def examples_grid(examples: Sequence[Example], classes: Sequence[str]) -> bytes:
    """Real training images with their controls: one row per image, columns image | each control."""
    channels = sorted({c for e in examples for c in e.controls})
    columns = ["image", *channels]
    figure = Figure(figsize=(1.6 * len(columns) + 1.2, 1.6 * len(examples) + 0.4))
    grid = figure.subplots(len(examples), len(columns), squeeze=False)
    colours = class_colours(classes)
    for i, example in enumerate(examples):
        for j, column in enumerate(columns):
            axes = grid[i][j]
            picture = example.image if column == "image" else example.controls.get(column)
            if picture is not None:
                axes.imshow(picture, cmap="gray", vmin=0, vmax=255)
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():  # the class's colour frames the row
                spine.set(color=colours[example.label], linewidth=3)
            if i == 0:
                axes.set_title(column, fontsize=10)
        grid[i][0].set_ylabel(f"{example.label}\n{example.id}", fontsize=8, rotation=0, ha="right",
                              va="center")
    return png(figure)
