import os
import pickle

import cv2
import numpy as np
import pytest

from builders import make_config, smooth_image, write_dicom
from controlbreast.data.ingest import ingest
from controlbreast.data.privacy import keyed_group
from controlbreast.data.sources import busi_candidates, csv_candidates
from controlbreast.errors import ControlBreastError, IngestError, ManifestError, SampleError


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
    (busi_root / "cyst" / "cyst (1).png").write_bytes(b"")  # no mask: not checked, left out later
    candidates, errors = busi_candidates(busi_config(tmp_path, busi_root))
    messages = sorted(str(e) for e in errors)
    assert messages == [
        "benign/benign (99)_mask.png: mask without an image",
        "malignant/malignant (3).png: missing mask (expected 'malignant (3)_mask.png')",
    ]
    assert len(candidates) == 18 and [c.source_label for c in candidates].count("cyst") == 1


def test_busi_two_classes_through_label_map(tmp_path, busi_root):
    cfg = busi_config(tmp_path, busi_root, classes=["no_cancer", "cancer"],
                      label_map={"normal": "no_cancer", "benign": "no_cancer",
                                 "malignant": "cancer"})
    candidates, errors = busi_candidates(cfg)
    assert not errors and {cfg.to_class(c.source_label) for c in candidates} == {"no_cancer",
                                                                                "cancer"}


def write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")


def test_csv_source_with_masks_groups_and_dicom(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", "s3cret")
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
    assert a.group == keyed_group("P-1", b"s3cret", "") and "P-1" not in a.group
    assert len(a.group) == len("pid-") + 32  # 128 bits
    sample = b.load()
    assert sample.mask is None and sample.group == keyed_group("P-7", b"s3cret", "")
    assert sample.bit_depth == 12


def test_csv_rows_outside_root_unknown_labels_and_bad_columns(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    manifest = tmp_path / "manifest.csv"
    write_csv(manifest, ["path,label", "../secret.png,benign", "x.png,cyst", ",benign"])
    cfg = make_config(tmp_path, data={"source": "csv", "root": str(root),
                                      "manifest": str(manifest)}).data
    candidates, errors = csv_candidates(cfg)
    assert [(c.source_path, c.source_label) for c in candidates] == [("x.png", "cyst")]
    text = [str(e) for e in errors]
    assert "points outside the data root" in text[0] and text[0].startswith("row 2:")
    assert text[1] == "row 4: empty path or label"
    write_csv(manifest, ["file,label,patient"])
    with pytest.raises(ControlBreastError, match=r"missing columns \['path'\], unknown columns"):
        csv_candidates(cfg)


def test_sample_error_pickles_with_path_and_problem():
    error = pickle.loads(pickle.dumps(SampleError("a.png", "bad")))
    assert (error.source_path, error.problem, str(error)) == ("a.png", "bad", "a.png: bad")


def csv_config(tmp_path, manifest, **data):
    return make_config(tmp_path, data={"source": "csv", "root": str(tmp_path),
                                       "manifest": str(manifest), **data}).data


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label\nimg/é.png,benign\n".encode("utf-8-sig"))
    candidates, errors = csv_candidates(csv_config(tmp_path, manifest))
    assert errors == [] and [c.source_path for c in candidates] == ["img/é.png"]


def test_latin1_csv_names_file_and_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label\na.png,benign\nr\u00e9sum\u00e9.png,normal\n".encode("latin-1"))
    with pytest.raises(ManifestError) as error:
        csv_candidates(csv_config(tmp_path, manifest))
    assert str(error.value) == (f"{manifest}: line 3 is not UTF-8 (byte 0xe9); re-save the file "
                                "as UTF-8")
    with pytest.raises(ManifestError, match=r"nope\.csv: cannot read the manifest"):
        csv_candidates(csv_config(tmp_path, tmp_path / "nope.csv"))


def test_busi_file_name_that_is_not_utf8_is_one_line_before_decoding(tmp_path, busi_root):
    folder = os.fsencode(busi_root / "benign")
    with open(os.path.join(folder, b"benign (1)\xe9.png"), "wb") as stream:
        stream.write((busi_root / "benign" / "benign (3).png").read_bytes())
    (busi_root / "normal" / "normal (3).png").write_bytes(b"")  # would fail only when decoded
    candidates, errors = busi_candidates(busi_config(tmp_path, busi_root))
    assert [str(e) for e in errors] == [
        "benign/benign (1)\\xe9.png: file name is not valid UTF-8; rename the file"]
    assert len(candidates) == 18
    with pytest.raises(IngestError) as error:
        ingest(make_config(tmp_path, data={"source": "busi", "root": str(busi_root)}))
    assert str(error.value).splitlines()[1:] == [
        "  benign/benign (1)\\xe9.png: file name is not valid UTF-8; rename the file"]
    assert not (tmp_path / "prepared").exists()
