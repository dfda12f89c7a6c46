"""One finished small pipeline (``report_builders.finished``) and the report stage run on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from controlbreast.stages import report as stage
from report_builders import finished

LOCK = {"schema": "2.0", "stages": {"ingest": {"cmd": "controlbreast ingest --params params.yaml", "outs": [
    {"path": "data/prepared", "hash": "md5", "md5": "0123456789abcdef0123456789abcdef.dir", "size": 123456,
     "nfiles": 37}]}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple:
    """``(config, metrics, reports folder)`` after ``controlbreast report`` ran in a folder with a
    ``dvc.lock`` (outside any git repository: the commit is unknown there)."""
    root = tmp_path_factory.mktemp("report")
    config, metrics = finished(root)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    (root / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    before = Path.cwd()
    os.chdir(root)
    try:
        stage.main(params)
    finally:
        os.chdir(before)
    return config, metrics, Path(config.paths.reports)
