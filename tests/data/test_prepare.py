"""Preparing one input (data/prepare.py): checks that make it a bad input, bit depth and scaling."""

import cv2
import numpy as np
import pytest

from builders import disc_mask, header_only_png, make_config, smooth_image, write_csv_set
from controlbreast.data.imageio import encode_png
from controlbreast.data.ingest import ingest
from controlbreast.errors import IngestError


def test_huge_image_is_one_bad_input_that_skip_skips(tmp_path, busi_root):
    (busi_root / "benign" / "benign (3).png").write_bytes(header_only_png(12000, 10000))
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root)})
    with pytest.raises(IngestError) as error:
        ingest(config)
    assert "\n  benign/benign (3).png: image is 12000x10000 (WxH) = 120 MP, above data.max_pixels" \
        in str(error.value)
    rows, rejected = ingest(make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                                        "on_error": "skip"}))
    assert len(rows) == 17 and [(r.source_path, r.reason) for r in rejected] == [
        ("benign/benign (3).png", "bad_input")]


def test_blank_and_tiny_images_are_bad_inputs_named_in_one_line_each(tmp_path, busi_root):
    (busi_root / "normal" / "normal (3).png").write_bytes(encode_png(np.zeros((96, 128), np.uint8)))
    strip = np.tile(np.linspace(40, 200, 24).astype(np.uint8), (4, 1))  # a 24 x 4 thumbnail
    (busi_root / "normal" / "normal (5).png").write_bytes(encode_png(strip))
    (busi_root / "normal" / "normal (5)_mask.png").write_bytes(encode_png(np.zeros_like(strip)))
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root)})
    with pytest.raises(IngestError) as error:
        ingest(config)
    lines = str(error.value).splitlines()
    assert lines[0].startswith("2 bad input(s); set data.on_error: skip")
    assert "  normal/normal (3).png: image is constant (every pixel 0): a blank frame or a failed " \
           "export" in lines
    assert any(line.startswith("  normal/normal (5).png: image is 24 x 4 px, below data.min_side 32")
               for line in lines)
    rows, rejected = ingest(make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                                        "on_error": "skip", "min_side": 1}))
    assert len(rows) == 17 and [(r.source_path, r.reason) for r in rejected] == [
        ("normal/normal (3).png", "bad_input")]  # min_side 1 keeps the thumbnail
    assert "normal/normal (3).png" in (config.paths.prepared / "rejected.csv").read_text()


def test_sixteen_bit_source_is_resized_then_scaled(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    ramp = np.tile(np.linspace(0, 4095, 256), (128, 1)).astype(np.uint16)  # 12 bits in 16
    cv2.imwrite(str(root / "deep.png"), ramp)
    cv2.imwrite(str(root / "other.png"), smooth_image(4))  # a second class: data.classes must all be found
    (tmp_path / "m.csv").write_text("path,label\ndeep.png,normal\nother.png,benign\n")
    data = {"source": "csv", "root": str(root), "manifest": str(tmp_path / "m.csv"), "image_size": 32,
            "classes": ["normal", "benign"], "require_lesion_masks": False}
    rows, _ = ingest(make_config(tmp_path, data=data))  # no declared depth: the container's 16 bits
    assert rows[0]["bit_depth"] == 16
    config = make_config(tmp_path, data={**data, "bit_depth": 12})
    rows, _ = ingest(config)
    image = cv2.imread(str(config.paths.prepared / "images" / "img-000000.png"), cv2.IMREAD_UNCHANGED)
    expected = np.rint(cv2.resize(ramp.astype(np.float32), (32, 16), interpolation=cv2.INTER_AREA)
                       * 255 / 4095)
    assert image.dtype == np.uint8 and rows[0]["bit_depth"] == 12
    assert np.abs(image[8:24].astype(int) - expected).max() <= 1  # absolute 12-bit scale kept


def test_a_twelve_bit_image_in_a_sixteen_bit_file_is_named_and_percentile_windowing_keeps_it_bright(
        tmp_path, capsys):
    root = tmp_path / "set"
    root.mkdir()
    ramp = np.tile(np.linspace(0, 4095, 256), (128, 1)).astype(np.uint16)  # 12 bits, no sBIT chunk
    cv2.imwrite(str(root / "deep.tif"), ramp)
    cv2.imwrite(str(root / "other.png"), smooth_image(4))
    (tmp_path / "m.csv").write_text("path,label\ndeep.tif,normal\nother.png,benign\n")
    data = {"source": "csv", "root": str(root), "manifest": str(tmp_path / "m.csv"), "image_size": 32,
            "classes": ["normal", "benign"], "require_lesion_masks": False}
    config = make_config(tmp_path, data=data)
    ingest(config)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING: deep.tif: declares 16-bit but its largest value 4095 fits in 12 bits: "
                        "scaled by 16 bits it comes out 16x too dark; set data.bit_depth: 12 (the "
                        "detector's depth) or data.intensity: percentile"]
    dark = cv2.imread(str(config.paths.prepared / "images" / "img-000000.png"), cv2.IMREAD_UNCHANGED)
    rows, _ = ingest(make_config(tmp_path, data={**data, "intensity": "percentile"}))
    bright = cv2.imread(str(config.paths.prepared / "images" / "img-000000.png"), cv2.IMREAD_UNCHANGED)
    assert "WARNING" not in capsys.readouterr().err and rows[0]["bit_depth"] == 16  # as declared
    assert dark[8:24].max() <= 16 and bright[8:24].min() <= 8 and bright[8:24].max() >= 247
    assert bright[8:24].mean() == pytest.approx(127.5, abs=4)


def test_a_mask_with_lesion_pixels_on_a_class_without_lesions_names_the_file(tmp_path):
    images = {f"{n}.png": smooth_image(n) for n in range(3)}
    images["m.png"] = disc_mask((96, 128), (40, 40), 10)
    images["empty.png"] = np.zeros((96, 128), np.uint8)
    data = {**write_csv_set(tmp_path, ["0.png,benign,m.png", "1.png,normal,m.png", "2.png,normal,empty.png"],
                            images), "classes": ["normal", "benign"]}
    with pytest.raises(IngestError, match=r"\n  1\.png: label 'normal' is not a lesion label "
                                          r"\(data\.lesion_labels\) but its mask marks \d+ lesion pixels"):
        ingest(make_config(tmp_path, data=data))
    rows, rejected = ingest(make_config(tmp_path, data={**data, "on_error": "skip"}))
    assert [r["source_path"] for r in rows] == ["0.png", "2.png"]  # an empty mask on normal is fine
    assert [r.source_path for r in rejected] == ["1.png"]


def test_lesion_label_without_mask_is_a_bad_input_unless_masks_are_optional(tmp_path):
    images = {f"{n}.png": smooth_image(n) for n in range(4)}
    images["m.png"] = disc_mask((96, 128), (40, 40), 10)
    data = write_csv_set(tmp_path, ["0.png,benign,m.png", "1.png,benign,", "2.png,normal,",
                                    "3.png,malignant,m.png"], images)
    with pytest.raises(IngestError, match=r"\n  1\.png: label 'benign' is a lesion label but the "
                                          r"input has no mask \(mask_path\)"):
        ingest(make_config(tmp_path, data=data))
    rows, rejected = ingest(make_config(tmp_path, data={**data, "on_error": "skip"}))
    assert [r["source_path"] for r in rows] == ["0.png", "2.png", "3.png"]
    assert [r.source_path for r in rejected] == ["1.png"]
    rows, rejected = ingest(make_config(tmp_path, data={**data, "require_lesion_masks": False}))
    assert len(rows) == 4 and not rejected
    assert {r["source_path"]: r["has_mask"] for r in rows} == {"0.png": True, "1.png": False,
                                                                "2.png": False, "3.png": True}

