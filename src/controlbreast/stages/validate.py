"""``controlbreast validate``: the data-quality gate on the prepared or a synthetic set."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.errors import DataQualityError
from controlbreast.quality.validate import validate
from controlbreast.tracking import stage_run

ROLES = {"prepared": ("training", "validation", "test"), "synthetic": ("synthetic",)}  # the set it checks


def main(params: Path, target: str = "prepared") -> None:
    """Run the gate; log pass/fail counts and the report to MLflow; fail on a failed expectation."""
    config = load_config(params)
    with stage_run(config, f"validate-{target}", ("quality",), data=ROLES[target]):
        try:
            report = validate(config, target)
        except DataQualityError:
            mlflow.log_metric("passed", 0)
            raise
        failed = sum(not o["passed"] for o in report["expectations"])
        mlflow.log_metrics({"passed": 1, "expectations": len(report["expectations"]),
                            "failed": failed, "images": report["images"]})
        mlflow.log_dict(report, f"data_quality_{target}.json")
    print(f"validate: {target} passed {len(report['expectations'])} expectations "
          f"on {report['images']} images")
