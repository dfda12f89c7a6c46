import csv

import cv2
import numpy as np
import pytest

from builders import make_config, smooth_image
from controlbreast.controls.build import make_controls
from controlbreast.controls.preview import control_preview
from controlbreast.data.ingest import ingest
from controlbreast.errors import ControlsError


def test_edges_and_masks_for_every_prepared_image(tmp_path, small_phantom):
    config = make_config(tmp_path, phantom=small_phantom, controls={"kind": "edges+mask"})
    rows, _ = ingest(config)
    controls = make_controls(config)
    assert [c.id for c in controls] == [r["id"] for r in rows]
    assert {c.channels for c in controls} == {"edges+mask"}
    for row in rows:
        edges = cv2.imread(str(config.paths.controls / "edges" / f"{row['id']}.png"), 0)
        mask = cv2.imread(str(config.paths.controls / "mask" / f"{row['id']}.png"), 0)
        prepared = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0)
        assert edges.shape == (64, 64) and edges.max() == 255
        np.testing.assert_array_equal(mask, prepared)
    with (config.paths.controls / "controls.csv").open() as stream:
        assert [r["split"] for r in csv.DictReader(stream)] == [r["split"] for r in rows]
    grid = control_preview(config.paths.prepared, config.paths.controls, controls, ("edges", "mask"))
    assert grid.shape == (3 * 64, 4 * 3 * 64)  # a row per class, 4 x (image | edges | mask)


def test_mask_controls_need_masks_for_lesions(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.tile(np.linspace(60, 120, 32).astype(np.uint8), (32, 1)))
    cv2.imwrite(str(root / "b.png"), smooth_image(1, (32, 32)))  # not a near-duplicate of a.png
    (tmp_path / "m.csv").write_text("path,label\na.png,normal\nb.png,malignant\n")
    config = make_config(tmp_path, data={"source": "csv", "root": str(root),
                                         "manifest": str(tmp_path / "m.csv"),
                                         "classes": ["normal", "malignant"],
                                         "require_lesion_masks": False,  # edges-only data
                                         "split": {"train": 0.34, "val": 0.33, "test": 0.33}},
                         controls={"kind": "mask"})
    ingest(config)
    with pytest.raises(ControlsError, match=r"b.png\): label 'malignant' has a lesion but"):
        make_controls(config)
    assert not config.paths.controls.exists()
