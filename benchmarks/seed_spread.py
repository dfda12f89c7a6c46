"""How far the headline differences move with the classifier seeds alone: what noise looks like to a
``dvc metrics diff`` reader.

Run it in a project whose ``dvc repro`` is committed. For each other seed set it runs ``dvc exp run
--set-param classifier.seeds=[...]`` (DVC reruns only the stages that read the seeds; the data, the
diffusion models and the synthetic set stay as they are, and a tune rerun returns the same values,
its trials using ``tune.seeds``), reads that experiment's ``metrics/summary.json``, and prints one
Markdown table: every recipe − real difference (each fraction, the test split and each external
set) under the committed seed set and each other one, and the spread (largest − smallest estimate).
The workspace is left at the last experiment; ``dvc exp show`` lists them all and ``dvc exp apply``
or ``git checkout . && dvc checkout`` returns to the commit.

Run: ``.venv/bin/python benchmarks/seed_spread.py "[3,4,5]" "[6,7,8]"``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

SUMMARY = Path("metrics/summary.json")


def committed_summary() -> dict:
    """``metrics/summary.json`` as committed at HEAD (the reference seed set)."""
    return json.loads(subprocess.run(["git", "show", f"HEAD:{SUMMARY}"], check=True, capture_output=True,
                                     text=True).stdout)


def experiment_summary(seeds: str) -> tuple[dict, float]:
    """``summary.json`` of ``dvc exp run`` with ``classifier.seeds`` set to ``seeds``, and its minutes."""
    began = time.perf_counter()
    subprocess.run(["dvc", "exp", "run", "--set-param", f"classifier.seeds={seeds}"], check=True)
    return json.loads(SUMMARY.read_text()), (time.perf_counter() - began) / 60


def differences(summary: dict) -> dict[tuple[str, str, str], float]:
    """(recipe, fraction, set) → the paired difference's estimate."""
    return {(recipe, fraction, name): value["estimate"]
            for recipe, by_fraction in summary["recipes"].items()
            for fraction, by_set in by_fraction.items()
            for name, value in by_set.items() if isinstance(value, dict)}


def spread_table(columns: dict[str, dict[tuple[str, str, str], float]]) -> str:
    """Markdown: one row per difference, one column per seed set, then the spread."""
    names = list(columns)
    keys = sorted(set.intersection(*(set(c) for c in columns.values())))
    lines = [f"| recipe − real | fraction | set | {' | '.join(names)} | spread |",
             "|---|---|---|" + "---|" * (len(names) + 1)]
    for key in keys:
        values = [columns[name][key] for name in names]
        cells = " | ".join(f"{v:+.3f}".replace("-", "−") for v in values)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {cells} | {max(values) - min(values):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed_sets", nargs="+", help="other classifier.seeds, e.g. '[3,4,5]'")
    args = parser.parse_args()
    reference = committed_summary()
    columns = {"committed seeds": differences(reference)}
    for seeds in args.seed_sets:
        summary, minutes = experiment_summary(seeds)
        print(f"seeds {seeds}: {minutes:.1f} min")
        columns[f"seeds {seeds}"] = differences(summary)
    print(spread_table(columns))
    spreads = [max(c[k] for c in columns.values()) - min(c[k] for c in columns.values())
               for k in set.intersection(*(set(c) for c in columns.values()))]
    print(f"largest spread {max(spreads):.3f}, median {sorted(spreads)[len(spreads) // 2]:.3f} "
          f"over {len(spreads)} differences and {len(columns)} seed sets")


if __name__ == "__main__":
    main()
