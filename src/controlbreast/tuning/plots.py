"""The study's figures (matplotlib PNGs): optimisation history, parameter importances and the
guidance x mix-ratio landscape. Each returns the path it wrote, or None when the study has too
few complete trials for it to mean anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState


def _figure(width: float, height: float) -> tuple[Figure, object]:
    """A figure without pyplot (no global state, no GUI backend), and its one axis."""
    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def history(study: optuna.Study, path: Path) -> Path | None:
    """Each complete trial's validation AUC by trial number, the best so far as a step line."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not trials:
        return None
    numbers = [t.number for t in trials]
    values = [t.value for t in trials]
    figure, axis = _figure(6, 4)
    axis.scatter(numbers, values, label="trial", color="tab:blue")
    axis.step(numbers, np.maximum.accumulate(values), where="post", color="tab:red", label="best so far")
    pruned = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))]
    for number in pruned:
        axis.axvline(number, color="0.8", linestyle=":", linewidth=1)
    axis.set(xlabel="trial number", ylabel="validation macro AUC (mean over seeds)",
             title=f"Optimisation history ({len(pruned)} pruned: dotted)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend()
    return _save(figure, path)


def importances(study: optuna.Study, path: Path) -> Path | None:
    """fANOVA importance of each dimension for the validation AUC (needs 2+ complete trials)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return None
    scores = optuna.importance.get_param_importances(study)
    names = list(scores)[::-1]
    figure, axis = _figure(6, 1.2 + 0.5 * len(names))
    bars = axis.barh(names, [scores[n] for n in names], color="tab:green")
    axis.bar_label(bars, fmt="%.2f", padding=3)
    axis.set(xlabel="importance (fANOVA, share of the AUC's variance)", ylabel="dimension",
             title="Parameter importances", xlim=(0, 1.12))
    return _save(figure, path)


def landscape(study: optuna.Study, path: Path) -> Path | None:
    """Validation AUC over guidance scale x mix ratio: complete trials coloured, pruned as crosses."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete or "guidance_scale" not in complete[0].params or "mix_ratio" not in complete[0].params:
        return None
    figure, axis = _figure(6, 4.5)
    points = axis.scatter([t.params["guidance_scale"] for t in complete],
                          [t.params["mix_ratio"] for t in complete], c=[t.value for t in complete],
                          cmap="viridis", s=70, edgecolors="k")
    figure.colorbar(points, ax=axis, label="validation macro AUC")
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if "guidance_scale" in t.params]
    if pruned:
        axis.scatter([t.params["guidance_scale"] for t in pruned], [t.params["mix_ratio"] for t in pruned],
                     marker="x", color="tab:red", label="pruned")
        axis.legend()
    best = study.best_trial
    axis.scatter([best.params["guidance_scale"]], [best.params["mix_ratio"]], marker="*", s=300,
                 facecolors="none", edgecolors="tab:red")
    axis.set(xlabel="guidance scale (classifier-free)", ylabel="mix ratio (synthetic / real)",
             title="Validation AUC landscape (star: best)")
    return _save(figure, path)


def render_all(study: optuna.Study, folder: Path) -> list[Path]:
    """Every figure that the study has data for, under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # a figure this study has no data for must not linger
        stale.unlink()
    made = [history(study, folder / "history.png"), importances(study, folder / "importances.png"),
            landscape(study, folder / "landscape.png")]
    return [path for path in made if path is not None]
