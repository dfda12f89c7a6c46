"""The data-efficiency curve: the arms at each ``classifier.real_fractions`` side by side.

Gathers what ``evaluation.arms`` measured for ``real@f`` and ``real+synthetic@f`` (fraction 1: the
ordinary arms) per fraction, with the number of real training images of its nested subset, so a
reader sees where on the curve synthetic images help, if anywhere.
"""

from __future__ import annotations

from controlbreast.config import Config
from controlbreast.data.subsets import training_subsets
from controlbreast.evaluation.bootstrap import format_interval
from controlbreast.mixing import FRACTION_ARMS, fraction_arm


def _interval_of(metrics: dict, name: str) -> dict:
    return {key: metrics[name][key] for key in ("estimate", "low", "high", "p_value", "seed_sd")
            if key in metrics[name]}


def data_efficiency(config: Config, metrics: dict, positive: str) -> tuple[dict, list[dict]]:
    """Per fraction: real training images, each arm's AUCs (mean over seeds, interval) and the paired
    ``real+synthetic − real``; and the same as rows for the DVC plot (one per arm and fraction).
    ``positive`` names the positive class's AUC (``auc_malignant``)."""
    subsets = training_subsets(config)
    table, rows = {}, []
    for fraction in sorted(config.classifier.real_fractions):
        entry = {"real_images": len(subsets[fraction])}
        for arm in FRACTION_ARMS:
            found = metrics["arms"].get(fraction_arm(arm, fraction))
            if found is None:
                continue
            entry[arm] = {name: _interval_of(found["seed_mean"], name)
                          for name in ("auc_ovr_macro", positive)}
            rows.append({"arm": arm, "fraction": fraction, "real_images": entry["real_images"],
                         **{f"{name}{suffix}": entry[arm][name][key] for name in ("auc_ovr_macro", positive)
                            for suffix, key in (("", "estimate"), ("_low", "low"), ("_high", "high"))}})
        difference = metrics["differences"].get(f"{fraction_arm('real+synthetic', fraction)} - "
                                                f"{fraction_arm('real', fraction)}")
        if difference:
            entry["real+synthetic - real"] = {name: _interval_of(difference, name)
                                              for name in ("auc_ovr_macro", positive)}
        table[f"{fraction:g}"] = entry
    return table, rows


def efficiency_table(rows: list[dict]) -> str:
    """Plain text: one row per arm and fraction, real training images and macro AUC with interval."""
    lines = ["arm | fraction | real images | AUC (macro)"]
    for row in rows:
        value = {"estimate": row["auc_ovr_macro"], "low": row["auc_ovr_macro_low"],
                 "high": row["auc_ovr_macro_high"]}
        lines.append(f"{row['arm']} | {row['fraction']:g} | {row['real_images']} | {format_interval(value)}")
    return "\n".join(lines)
