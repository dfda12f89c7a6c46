"""The few scalars someone compares across runs: a stage run's MLflow metrics, and the files
``dvc metrics`` reads (``dvc_headline``).

A run's metrics are the runs table's columns and the chart view's charts, so each run logs a
handful (at most ``CAP``) with names that read as a column header (``test_auc_real``,
``test_diff_real_synthetic_vs_real``); the full tables go in as artifacts (``log_full_table``).
The classifier headline is read from ``evaluation.headline.headline``'s output (``metrics/summary.json``):
per set (the test split, then each external set) each full-data arm's macro AUC, and the paired
differences (the primary one, ``real+synthetic - real``, with its interval; on the test split every
other difference's estimate too). The synthetic headline names the realism, control, class and
memorisation figures of ``evaluate_synthetic``'s report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlbreast.tracking import flatten, safe_key

CAP = 30  # metrics per run: past this the runs table hides them and the chart view floods
PRIMARY = "real+synthetic - real"  # evaluation.headline's primary difference
TEST = "test"
# evaluate_synthetic's report: column name -> the path of the number in the report
SYNTHETIC = {
    "images": ("images",),
    "fid": ("realism", "overall", "fid"),
    "fid_real_val": ("realism", "reference_real_val", "overall", "fid"),
    "kid": ("realism", "overall", "kid_mean"),
    "precision": ("realism", "overall", "precision"),
    "recall": ("realism", "overall", "recall"),
    "edge_f1": ("control_fidelity", "edge_f1", "matched"),
    "edge_f1_ratio": ("control_fidelity", "edge_f1", "ratio"),
    "lesion_dice": ("lesion_placement", "matched"),
    "class_accuracy": ("class_fidelity", "accuracy"),
    "class_macro_auc": ("class_fidelity", "macro_auc"),
    "likely_copies": ("memorisation", "likely_copies"),
    "separability_auc": ("separability", "overall", "estimate"),
}


def column(*parts: str) -> str:
    """An MLflow-safe metric name from its parts: ``("test", "auc", "real+synthetic")`` →
    ``test_auc_real_synthetic``."""
    return safe_key("_".join(parts))


def _difference_name(name: str) -> str:
    """``"real+synthetic - real"`` → ``"diff_real+synthetic_vs_real"`` (made safe by ``column``)."""
    return "diff_" + "_vs_".join(side.strip() for side in name.split(" - "))


def _set_metrics(name: str, aucs: Mapping[str, float | None], auc_label: str,
                 differences: Mapping[str, Mapping[str, float | None]], every: bool) -> dict[str, float]:
    """One set's columns: each arm's AUC, the primary difference with its interval and, when
    ``every``, the other differences' estimates."""
    found = {column(name, auc_label, arm): value for arm, value in aucs.items()}
    for difference, bounds in differences.items():
        if difference == PRIMARY:
            found.update({column(name, _difference_name(difference), *([] if key == "estimate" else [key])):
                          bounds.get(key) for key in ("estimate", "low", "high")})
        elif every:
            found[column(name, _difference_name(difference))] = bounds.get("estimate")
    return {key: float(value) for key, value in found.items() if value is not None}


def classifier_headline(summary: Mapping[str, Any]) -> dict[str, float]:
    """The columns of ``evaluation.headline.headline(metrics)``'s output (module docstring), test
    split first, then each external set (``<set>_auc_<arm>``, ``<set>_diff_real_synthetic_vs_real``
    with ``_low`` and ``_high``), then the test split's other differences (estimates), at most
    ``CAP`` (the last of those go first); an undefined number (null) is left out."""
    found = _set_metrics(TEST, summary["auc"], "auc", summary["difference"], every=False)
    for name, entry in summary.get("external", {}).items():
        label, aucs = (("auc", entry["auc"]) if "auc" in entry
                       else ("auc_present", entry["auc_ovr_macro_present"]))
        found.update(_set_metrics(name, aucs, label, {PRIMARY: entry.get(PRIMARY, {})}, every=False))
    found.update(_set_metrics(TEST, {}, "auc", summary["difference"], every=True))  # the rest last
    return capped(found)


def dvc_headline(summary: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``{set: {arm: {"auc": x, "diff": d, "diff_low": l, "diff_high": h}}}`` from the same
    summary: per set (the test split, each external set) and full-data arm, its macro AUC and, where
    the summary has it, the paired difference ``<arm> - real`` with its interval. ``evaluate`` writes
    one small file per set and arm (``metrics/headline/<set>/<arm>.json``), so ``dvc metrics show``
    prints a row per set and arm under the same four columns: a table a terminal shows whole."""
    sets = {TEST: (summary["auc"], summary["difference"])}
    for name, entry in summary.get("external", {}).items():
        sets[name] = (entry.get("auc", entry.get("auc_ovr_macro_present", {})),
                      {PRIMARY: entry[PRIMARY]} if PRIMARY in entry else {})
    found: dict[str, dict[str, dict[str, float]]] = {}
    for name, (aucs, differences) in sets.items():
        for arm, auc in aucs.items():
            bounds = differences.get(f"{arm} - real", {})
            row = {"auc": auc, "diff": bounds.get("estimate"), "diff_low": bounds.get("low"),
                   "diff_high": bounds.get("high")}
            found.setdefault(name, {})[arm] = {key: value for key, value in row.items() if value is not None}
    return found


def synthetic_headline(report: Mapping[str, Any]) -> dict[str, float]:
    """The columns of ``evaluate_synthetic``'s report (``SYNTHETIC``), and each arm's shortcut-probe
    AUC (``shortcut_auc_<arm>``: 0.5 when the source says nothing of the class); figures the report
    lacks (no segmenter, no separability run) are left out."""
    found: dict[str, float] = {}
    for name, path in SYNTHETIC.items():
        value: Any = report
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value)
    for arm, probe in report.get("shortcut_probe", {}).items():
        if probe.get("source_class_auc") is not None:
            found[column("shortcut_auc", arm)] = float(probe["source_class_auc"])
    return capped(found)


def capped(metrics: dict[str, float]) -> dict[str, float]:
    """The first ``CAP`` of ``metrics`` (in the order given: the most compared first). A setup with
    many external sets or arms loses the last sets' columns; their numbers stay in the run's
    full table (``long_table``)."""
    return dict(list(metrics.items())[:CAP])


def long_table(report: Mapping[str, Any]) -> dict[str, list]:
    """A nested report as a two-column table (``{"metric": [...], "value": [...]}``: one row per
    number, the flattened key as ``metric``), for ``mlflow.log_table``: every number stays
    queryable (``mlflow.load_table``, to 10 decimals) without one metric key each."""
    rows = [(key, float(value)) for key, value in flatten(report).items()
            if isinstance(value, int | float) and not isinstance(value, bool)]
    return {"metric": [key for key, _ in rows], "value": [value for _, value in rows]}


def log_report(report: Mapping[str, Any], name: str) -> None:
    """Log a stage's full ``report`` to the active run as artifacts: ``<name>.json`` as written, and
    ``tables/<name>.json``, its ``long_table`` (the run page's table viewer; ``mlflow.load_table``
    reads it across runs)."""
    import mlflow

    mlflow.log_dict(dict(report), f"{name}.json")
    mlflow.log_table(long_table(report), f"tables/{name}.json")
