"""The real-only classifier's levers, one row each: what makes the baseline strong within a CPU budget.

Run it in a project after ``dvc repro validate`` (it reads ``data/prepared``; it writes only under
``--scratch``). Each variant is a name and dotted params overrides, as in ``recipe.py``, e.g.
``aug-light:classifier.augment.max_rotation=5,classifier.augment.intensity=0.05``. Every variant
trains the ``real`` arm on each of ``classifier.seeds`` and reports:

- the mean over seeds of the kept epoch's validation macro AUC (what a user may choose by: the
  test column is shown for the record, never to pick a lever);
- the seed ensemble's test macro AUC with its bootstrap interval (``evaluate``'s own functions);
- its paired difference against the first variant (the reference row, same resamples);
- minutes of training for all seeds.

Run: ``.venv/bin/python benchmarks/baseline.py [--params params.yaml] [--scratch /tmp/baseline]
[--variant NAME:key=value,... ...]``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from controlbreast.classify.arm_training import train_arms
from controlbreast.classify.predict import Predictor
from controlbreast.config import parse_config, read_params
from controlbreast.evaluation.arms import positive_index
from controlbreast.evaluation.bootstrap import format_interval
from controlbreast.evaluation.predictions import load_arm, predict_arm, split_images, trained_arms
from controlbreast.evaluation.scoring import over_seeds, paired_differences, seed_values
from controlbreast.tracking import stage_run
from recipe import overridden, parse_variant


def run_variant(raw: dict, overrides: dict[str, str], scratch: Path) -> tuple[dict, float]:
    """Train the variant's real arm under ``scratch``; its config and the training minutes."""
    paths = {"paths.classifiers": str(scratch / "classifiers"), "paths.mlruns": str(scratch / "mlruns")}
    config = parse_config(overridden(raw, {**overrides, **{k: yaml.safe_dump(v) for k, v in paths.items()}}),
                          "variant")
    start = time.perf_counter()
    with stage_run(config, "baseline-benchmark", ("classifier",)):
        train_arms(config, [("real", 1.0)])
    return config, (time.perf_counter() - start) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/baseline"))
    parser.add_argument("--variant", nargs="+", default=["default"])
    args = parser.parse_args()
    raw = read_params(args.params)
    reference, rows, values = None, [], {}
    for text in args.variant:
        name, overrides = parse_variant(text)
        scratch = args.scratch / name
        shutil.rmtree(scratch, ignore_errors=True)
        config, minutes = run_variant(raw, overrides, scratch)
        val, test = split_images(config, "val"), split_images(config, "test")
        folders = trained_arms(config.paths.classifiers)["real"]
        probs = predict_arm("real", load_arm(folders, test.classes), val, test)
        positive = positive_index(config)
        values[name] = seed_values(probs, val, test, positive, config.evaluate)[0]
        metrics = over_seeds(values[name], len(test.ids), config.evaluate)
        val_auc = float(np.mean([Predictor.from_folder(f).card.val_auc for f in folders]))
        difference = ""
        if reference is None:
            reference = name
        else:  # paired seed by seed, over seeds and test images
            diff = paired_differences(name, reference, values, len(test.ids), config.evaluate)
            difference = format_interval(diff["auc_ovr_macro"], signed=True)
        rows.append((name, f"{val_auc:.3f}", format_interval(metrics["auc_ovr_macro"]), difference,
                     f"{minutes:.1f}"))
        print(" | ".join(rows[-1]), flush=True)
    print("\n| lever | val macro AUC (seed mean) | test macro AUC (seed mean) | − first row | minutes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
