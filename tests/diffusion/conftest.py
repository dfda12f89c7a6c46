"""A tiny prepared phantom set with edge controls at 32 px, shared by the diffusion tests."""

from __future__ import annotations

import pytest

from builders import make_config
from controlbreast.config import Config
from controlbreast.controls.build import make_controls
from controlbreast.data.ingest import ingest


@pytest.fixture(scope="package")
def prepared(tmp_path_factory) -> Config:
    """Ingest and controls once: 12 patients' phantom images at 32 px with Canny controls."""
    root = tmp_path_factory.mktemp("prepared")
    config = make_config(root, data={"image_size": 32},
                         phantom={"patients_per_class": 4, "max_images_per_patient": 2, "render_size": 64})
    ingest(config)
    make_controls(config)
    return config
