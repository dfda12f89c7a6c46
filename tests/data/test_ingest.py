import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

import controlbreast
from builders import (
    BUSI_SHARED,
    disc_mask,
    header_only_png,
    make_config,
    smooth_image,
    write_busi,
)
from controlbreast.data.imageio import encode_png
from controlbreast.data.ingest import ingest, rejection_counts, run_ingest, split_counts
from controlbreast.data.preprocess import fit_to_square
from controlbreast.errors import ConfigError, IngestError, ManifestError


def tree_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(folder):
    with (folder / "manifest.csv").open() as stream:
        return list(csv.DictReader(stream))


def assert_groups_within_one_split(rows):
    splits = defaultdict(set)
    for row in rows:
        splits[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in splits.values())


def test_fit_to_square_pads_or_crops_keeping_aspect():
    wide = np.full((50, 100), 200, np.uint8)
    padded = fit_to_square(wide, 64, "pad")
    assert padded.shape == (64, 64) and padded[0].max() == 0 and padded[32].min() == 200
    cropped = fit_to_square(wide, 64, "crop")
    assert cropped.shape == (64, 64) and cropped.min() == 200


def test_phantom_ingest_is_deterministic_and_group_aware(tmp_path, small_phantom):
    config = make_config(tmp_path, phantom=small_phantom, data={"workers": 2})
    rows, rejected = ingest(config)
    first = tree_digest(config.paths.prepared)
    assert rejected == [] and len(rows) == len(manifest(config.paths.prepared))
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert_groups_within_one_split(rows)
    for row in rows:  # every phantom image has a mask, empty exactly for normal
        mask = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0)
        assert row["has_mask"] and (mask.max() == 0) == (row["label"] == "normal")
    ingest(make_config(tmp_path, phantom=small_phantom, data={"workers": 1}))
    assert tree_digest(config.paths.prepared) == first  # byte-identical, whatever the workers
    image = cv2.imread(str(config.paths.prepared / "images" / "img-000000.png"),
                       cv2.IMREAD_UNCHANGED)
    assert image.shape == (64, 64) and image.dtype == np.uint8


def test_busi_fixture_ingest(tmp_path, busi_root):
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                         "image_size": 32})
    rows, _ = ingest(config)
    assert len(rows) == 18 and split_counts(rows)["train/benign"] >= 3
    row = next(r for r in rows if r["source_path"] == "benign/benign (3).png")
    assert (row["orig_height"], row["orig_width"], row["bit_depth"]) == (96, 128, 8)
    mask = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0)
    assert mask.shape == (32, 32) and set(np.unique(mask)) == {0, 255}


def test_near_duplicates_never_straddle_splits(tmp_path):
    root = write_busi(tmp_path / "busi", per_class=12)
    folder = root / "benign"
    for n in (3, 5, 7, 9):  # re-encoded as JPEG-quality copies, slightly shifted
        image = cv2.imread(str(folder / f"benign ({n}).png"), 0)
        copy = np.roll(image, 2, axis=1)
        cv2.imwrite(str(folder / f"benign ({n + 100}).png"), copy)
        cv2.imwrite(str(folder / f"benign ({n + 100})_mask.png"),
                    cv2.imread(str(folder / f"benign ({n})_mask.png"), 0))
    rows, _ = ingest(make_config(tmp_path, data={"source": "busi", "root": str(root)}))
    by_path = {r["source_path"]: r for r in rows}
    for n in (3, 5, 7, 9):
        original, copy = by_path[f"benign/benign ({n}).png"], by_path[f"benign/benign ({n + 100}).png"]
        assert original["group"] == copy["group"] and original["split"] == copy["split"]
    assert_groups_within_one_split(rows)


def break_inputs(root):
    (root / "benign" / "benign (3).png").write_bytes(b"")
    data = (root / "benign" / "benign (5).png").read_bytes()
    (root / "benign" / "benign (5).png").write_bytes(data[: len(data) // 3])
    (root / "malignant" / "malignant (3)_mask.png").unlink()
    cv2.imwrite(str(root / "malignant" / "malignant (5)_mask.png"), np.zeros((10, 10), np.uint8))
    (root / "lipoma").mkdir()


EXPECTED_PROBLEMS = {
    "benign/benign (3).png": "file is empty (0 bytes)",
    "benign/benign (5).png": "corrupt or truncated image",
    "malignant/malignant (3).png": "missing mask",
    "malignant/malignant (5)_mask.png": "mask is 10x10 (WxH) but its image is 128x96",
}


def test_bad_inputs_fail_with_one_line_each_and_keep_previous_output(tmp_path, busi_root):
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root)})
    ingest(config)
    before = tree_digest(config.paths.prepared)
    break_inputs(busi_root)
    with pytest.raises(IngestError) as error:
        ingest(config)  # the missing mask is found while listing: no image is decoded
    assert str(error.value).startswith("1 bad input(s) found while listing the inputs; set "
                                       "data.on_error: skip")
    assert "malignant/malignant (3).png: missing mask" in str(error.value)
    (busi_root / "malignant" / "malignant (3).png").unlink()
    with pytest.raises(IngestError) as error:
        ingest(config)
    message = str(error.value)
    assert message.startswith("3 bad input(s); set data.on_error: skip")
    for path, problem in list(EXPECTED_PROBLEMS.items())[:2] + list(EXPECTED_PROBLEMS.items())[3:]:
        assert any(line.strip().startswith(path) and problem in line for line in message.splitlines())
    assert tree_digest(config.paths.prepared) == before
    assert not [p for p in config.paths.prepared.parent.iterdir() if p.name.startswith(".")]


def test_bad_inputs_skipped_and_listed(tmp_path, busi_root):
    break_inputs(busi_root)
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                         "on_error": "skip"})
    rows, rejected = ingest(config)
    assert len(rows) == 14 and len(rejected) == 4
    with (config.paths.prepared / "rejected.csv").open() as stream:
        table = list(csv.DictReader(stream))
    listed = {r["source_path"]: r["problem"] for r in table}
    assert {r.reason for r in rejected} == {"bad_input"}
    assert listed.keys() == EXPECTED_PROBLEMS.keys()
    assert all(EXPECTED_PROBLEMS[k] in v for k, v in listed.items())


def test_exact_duplicates_keep_one_copy_or_none_on_conflicting_labels(tmp_path, busi_root):
    for source, target in (("benign/benign (3)", "benign/benign (77)"),
                           ("benign/benign (5)", "malignant/malignant (77)")):
        for suffix in (".png", "_mask.png"):
            (busi_root / f"{target}{suffix}").write_bytes((busi_root / f"{source}{suffix}").read_bytes())
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root)})
    rows, rejected = ingest(config)
    paths = {r["source_path"] for r in rows}
    assert "benign/benign (3).png" in paths and "benign/benign (77).png" not in paths
    assert not paths & {"benign/benign (5).png", "malignant/malignant (77).png"}
    problems = {e.source_path: e.problem for e in rejected}
    assert problems["benign/benign (77).png"] == "exact duplicate of benign/benign (3).png"
    assert "conflicting labels ['benign', 'malignant']" in problems["malignant/malignant (77).png"]
    assert len(rows) == 18 - 1


def test_empty_data_set(tmp_path):
    (tmp_path / "empty" / "benign").mkdir(parents=True)
    with pytest.raises(IngestError, match=r"no usable images in folder .*empty: the data set is empty"):
        ingest(make_config(tmp_path, data={"source": "busi", "root": str(tmp_path / "empty")}))


@pytest.mark.busi
@pytest.mark.skipif(not BUSI_SHARED.is_dir(), reason="../shared/datasets/busi is not present")
def test_shared_busi_copy(tmp_path):
    config = make_config(tmp_path, data={"source": "busi", "root": str(BUSI_SHARED),
                                         "workers": 2})
    rows, rejected = ingest(config)
    assert len(rows) == 602  # 612 less one image filed as benign and as malignant, and 4 pairs
    assert sorted(e.source_path for e in rejected if e.reason == "label_conflict") == [
        "benign/benign (433).png", "malignant/malignant (145).png"]
    assert sorted(e.source_path for e in rejected if e.reason == "near_duplicate_conflict") == [
        "benign/benign (164).png", "benign/benign (399).png", "benign/benign (406).png",
        "benign/benign (437).png", "malignant/malignant (52).png", "malignant/malignant (93).png",
        "malignant/malignant (94).png", "normal/normal (34).png"]  # a lesion under two labels
    counts = {label: sum(r["label"] == label for r in rows)
              for label in ("benign", "malignant", "normal")}
    assert counts == {"benign": 343, "malignant": 155, "normal": 104}
    assert_groups_within_one_split(rows)
    assert len({r["group"] for r in rows}) < len(rows)  # near-duplicates were grouped
    row = next(r for r in rows if r["source_path"] == "benign/benign (100).png")
    merged = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0) > 0
    for part in ("benign (100)_mask.png", "benign (100)_mask_1.png"):
        alone = cv2.imread(str(BUSI_SHARED / "benign" / part), 0).astype(np.float32) / 255
        alone = fit_to_square(alone, 64, "pad") >= 0.5
        assert alone.any() and (merged & alone).sum() >= 0.9 * alone.sum()  # both parts kept


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


def test_a_class_no_source_label_matches_is_an_error_naming_it_and_the_labels(tmp_path, busi_root):
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                         "classes": ["normal", "benign", "malignnat"]})
    with pytest.raises(ConfigError, match=r"^data.classes entry 'malignnat' matches no label in folder "
                                          r".*busi \(labels found: benign, malignant, normal\)"):
        ingest(config)
    assert not config.paths.prepared.exists()
    fixed = make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                        "classes": ["normal", "cancer"],
                                        "label_map": {"benign": "normal", "malignant": "cancer"}})
    assert {row["label"] for row in ingest(fixed)[0]} == {"normal", "cancer"}  # mapped: no error


def test_a_manifest_with_a_header_and_no_rows_names_the_file(tmp_path):
    data = write_csv_set(tmp_path, [], {})
    with pytest.raises(ManifestError, match=r"m\.csv: a header and no rows: nothing to ingest"):
        ingest(make_config(tmp_path, data=data))


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


def test_labels_left_out_of_classes_are_excluded_and_listed(tmp_path, small_phantom):
    config = make_config(tmp_path, phantom=small_phantom, data={"classes": ["normal", "malignant"]})
    rows, rejected = ingest(config)  # on_error: fail, and nothing failed
    assert {r["label"] for r in rows} == {"normal", "malignant"}
    assert rejected and {r.reason for r in rejected} == {"excluded_label"}
    assert all(r.source_path.startswith("phantom/benign/") for r in rejected)
    assert rejected[0].problem == ("label 'benign' maps to no class of data.classes ['normal', "
                                   "'malignant'] (left out; map it with data.label_map to use it)")
    assert_groups_within_one_split(rows)
    assert len(list((config.paths.prepared / "images").iterdir())) == len(rows)


def write_csv_set(tmp_path, lines, images):
    """A csv source under tmp_path/set: ``images`` maps a file name to its (H, W) uint8 pixels."""
    root = tmp_path / "set"
    root.mkdir(exist_ok=True)
    for name, pixels in images.items():
        cv2.imwrite(str(root / name), pixels)
    (tmp_path / "m.csv").write_text("\n".join(["path,label,mask_path", *lines]) + "\n")
    return {"source": "csv", "root": str(root), "manifest": str(tmp_path / "m.csv")}


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


def test_near_duplicates_with_conflicting_labels_drop_keep_or_fail(tmp_path):
    base = smooth_image(1)
    images = {"a.png": base, "a-copy.png": np.roll(base, 2, axis=1),  # near-identical pair
              "b.png": smooth_image(2), "c.png": smooth_image(3)}
    data = write_csv_set(tmp_path, ["a.png,normal,", "a-copy.png,malignant,", "b.png,normal,",
                                    "c.png,normal,"], images)
    data.update(require_lesion_masks=False, classes=["normal", "malignant"], near_duplicate_max_drop=1.0)
    rows, rejected = ingest(make_config(tmp_path, data=data))
    assert [r["source_path"] for r in rows] == ["b.png", "c.png"]
    assert {(r.source_path, r.reason) for r in rejected} == {
        ("a.png", "near_duplicate_conflict"), ("a-copy.png", "near_duplicate_conflict")}
    assert "a-copy.png (malignant), a.png (normal)" in rejected[0].problem
    with (tmp_path / "prepared" / "rejected.csv").open() as stream:
        assert [r["problem"] for r in csv.DictReader(stream)] == [r.problem for r in rejected]
    assert rejection_counts(rejected) == {"near_duplicate_conflict": 2}
    assert sorted(p.name for p in (tmp_path / "prepared" / "images").iterdir()) == [
        f"img-00000{i}.png" for i in (2, 3)]
    rows, rejected = ingest(make_config(tmp_path, data={**data, "near_duplicate_conflicts": "keep"}))
    assert len(rows) == 4 and not rejected
    with pytest.raises(IngestError, match=r"^1 set\(s\) of near-duplicate images with conflicting "
                                          r"labels; set data.near_duplicate_conflicts"):
        ingest(make_config(tmp_path, data={**data, "near_duplicate_conflicts": "fail"}))
    (tmp_path / "m.csv").write_text("path,label\na.png,normal\na-copy.png,malignant\n")
    with pytest.raises(IngestError, match="no usable images: all 2 are duplicates or label conflicts"):
        ingest(make_config(tmp_path, data=data))


def noisy_copies(count: int, level: float) -> list[np.ndarray]:
    """``count`` views of one smooth image, each with its own fine noise of std ``level``: look-alikes
    whose texture correlates about 0.8 at level 40 (a hash distance near 8 bits)."""
    base = smooth_image(5).astype(np.float32)
    noise = [np.random.default_rng(k).normal(size=base.shape).astype(np.float32) for k in range(count)]
    return [np.clip(base + cv2.GaussianBlur(n, (0, 0), 1.2) * level, 0, 255).astype(np.uint8) for n in noise]


def test_a_cross_patient_match_needs_stronger_evidence_than_one_within_a_patient(tmp_path):
    """Two women's look-alike images (texture NCC ~0.8) stay two patients when the source says so
    (data.near_duplicate_similarity_across_patients 0.9); without patient ids they are one group."""
    images = dict(zip(["0.png", "1.png"], noisy_copies(2, 40), strict=True))
    images |= {f"{n}.png": smooth_image(n + 20) for n in range(2, 8)}
    data = {**write_csv_set(tmp_path, [], images), "classes": ["normal", "benign"], "near_duplicate_bits": 12,
            "allow_unkeyed_groups": True}
    config = make_config(tmp_path, data=data)
    rows = [f"{n}.png,normal,patient-{n}" for n in range(8)]
    (tmp_path / "m.csv").write_text("path,label,group_id\n" + "\n".join(rows) + "\n")
    result = run_ingest(config, every_class=False)
    assert result.merges["confirmed_pairs"] == 0 and result.merges["rejected_by_similarity"] >= 1
    groups = {r["source_path"]: r["group"] for r in result.rows}
    assert groups["0.png"] != groups["1.png"]
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(f"{n}.png,normal" for n in range(8)) + "\n")
    groups = {r["source_path"]: r["group"] for r in run_ingest(config, every_class=False).rows}
    assert groups["0.png"] == groups["1.png"]


def test_label_conflicts_that_would_eat_the_data_set_stop_with_the_largest_sets_and_the_knob(tmp_path):
    """Before: every near-duplicate conflict was dropped (116 of 318 real films, one chained set of
    79); now dropping more than data.near_duplicate_max_drop (0.05) stops ingest instead."""
    images = dict(zip(["0.png", "1.png", "2.png"], noisy_copies(3, 5), strict=True))
    images |= {f"{n}.png": smooth_image(n + 20) for n in range(3, 20)}
    lines = [f"{n}.png,{'malignant' if n == 1 else 'normal'}," for n in range(20)]
    data = {**write_csv_set(tmp_path, lines, images), "require_lesion_masks": False,
            "classes": ["normal", "malignant"]}
    expected = (r"near-duplicate label conflicts would drop 3 of 20 images \(15%\), above "
                r"data.near_duplicate_max_drop 0.05\. .*set data.near_duplicate_max_drop: 0\.15.*"
                r"The largest sets:\n  3 images: 0\.png \(normal\), 1\.png \(malignant\), 2\.png \(normal\)")
    with pytest.raises(IngestError, match=expected):
        ingest(make_config(tmp_path, data=data))
    rows, rejected = ingest(make_config(tmp_path, data={**data, "near_duplicate_max_drop": 0.15}))
    assert len(rows) == 17 and rejection_counts(rejected) == {"near_duplicate_conflict": 3}


KILLED_RUN = """
import sys
from pathlib import Path
from builders import make_config
from controlbreast.data.ingest import ingest
ingest(make_config(Path(sys.argv[1]), data={"workers": 2},
                   phantom={"patients_per_class": 400, "render_size": 128}))
"""


def test_killed_ingest_leaves_no_workers_and_the_next_run_cleans_up(tmp_path, small_phantom):
    paths = [str(Path(controlbreast.__file__).parents[1]), str(Path(__file__).parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".prepared.build-*/images/img-00001*.png")):  # mid-way
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers = psutil.Process(run.pid).children(recursive=True)
    assert len(workers) == 2
    run.send_signal(signal.SIGKILL)
    run.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    stale = list(tmp_path.glob(".prepared.build-*"))
    assert len(stale) == 1 and stale[0].name.startswith(f".prepared.build-{run.pid}-")
    rows, _ = ingest(make_config(tmp_path, phantom=small_phantom))
    assert rows and not list(tmp_path.glob(".prepared.build-*"))
