import pickle

import cv2
import numpy as np
import pytest

from builders import make_config, smooth_image, write_dicom
from controlbreast.data.sources import busi_candidates, csv_candidates, salted_group
from controlbreast.errors import ControlBreastError, SampleError


def busi_config(tmp_path, root, **data):
    return make_config(tmp_path, data={"source": "busi", "root": str(root), **data}).data


def test_busi_layout_with_gaps_and_multipart_masks(tmp_path, busi_root):
    candidates, errors = busi_candidates(busi_config(tmp_path, busi_root))
    assert errors == []
    assert len(candidates) == 18
    assert {c.source_label for c in candidates} == {"benign", "malignant", "normal"}
    first = next(c for c in candidates if c.source_path == "benign/benign (3).png")
    sample = pickle.loads(pickle.dumps(first.load))()
    assert sample.mask.shape == sample.image.shape == (96, 128)
    assert sample.mask[40, 40] and sample.mask[60, 90]  # both parts merged


def test_busi_problems_are_reported_per_file(tmp_path, busi_root):
    (busi_root / "malignant" / "malignant (3)_mask.png").unlink()
    (busi_root / "benign" / "benign (99)_mask.png").write_bytes(b"")
    (busi_root / "cyst").mkdir()
    candidates, errors = busi_candidates(busi_config(tmp_path, busi_root))
    messages = sorted(str(e) for e in errors)
    assert messages == [
        "benign/benign (99)_mask.png: mask without an image",
        "cyst/: unknown label folder 'cyst' (classes: ['normal', 'benign', 'malignant']; "
        "add it to data.label_map)",
        "malignant/malignant (3).png: missing mask (expected 'malignant (3)_mask.png')",
    ]
    assert len(candidates) == 17


def test_busi_two_classes_through_label_map(tmp_path, busi_root):
    cfg = busi_config(tmp_path, busi_root, classes=["no_cancer", "cancer"],
                      label_map={"normal": "no_cancer", "benign": "no_cancer",
                                 "malignant": "cancer"})
    candidates, errors = busi_candidates(cfg)
    assert not errors and {cfg.to_class(c.source_label) for c in candidates} == {"no_cancer",
                                                                                "cancer"}


def write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_csv_source_with_masks_groups_and_dicom(tmp_path):
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    cv2.imwrite(str(root / "img" / "a.png"), smooth_image(1))
    cv2.imwrite(str(root / "img" / "a_mask.png"), np.zeros((96, 128), np.uint8))
    write_dicom(root / "img" / "b.dcm", smooth_image(2).astype(np.uint16) * 16, patient="P-7")
    manifest = tmp_path / "manifest.csv"
    write_csv(manifest, ["path,label,mask_path,group_id", "img/a.png,benign,img/a_mask.png,P-1",
                         "img/b.dcm,malignant,,"])
    cfg = make_config(tmp_path, data={"source": "csv", "root": str(root),
                                      "manifest": str(manifest)}).data
    candidates, errors = csv_candidates(cfg)
    assert errors == []
    a, b = candidates
    assert a.group == salted_group("P-1", "controlbreast") and "P-1" not in a.group
    sample = b.load()
    assert sample.mask is None and sample.group == salted_group("P-7", "controlbreast")
    assert sample.bit_depth == 12


def test_csv_rows_outside_root_unknown_labels_and_bad_columns(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    manifest = tmp_path / "manifest.csv"
    write_csv(manifest, ["path,label", "../secret.png,benign", "x.png,cyst", ",benign"])
    cfg = make_config(tmp_path, data={"source": "csv", "root": str(root),
                                      "manifest": str(manifest)}).data
    candidates, errors = csv_candidates(cfg)
    assert candidates == []
    text = [str(e) for e in errors]
    assert "points outside the data root" in text[0] and text[0].startswith("row 2:")
    assert text[1].startswith("x.png: unknown label 'cyst'")
    assert text[2] == "row 4: empty path or label"
    write_csv(manifest, ["file,label,patient"])
    with pytest.raises(ControlBreastError, match=r"missing columns \['path'\], unknown columns"):
        csv_candidates(cfg)


def test_sample_error_pickles_with_path_and_problem():
    error = pickle.loads(pickle.dumps(SampleError("a.png", "bad")))
    assert (error.source_path, error.problem, str(error)) == ("a.png", "bad", "a.png: bad")
