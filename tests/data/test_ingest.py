import csv
import hashlib
from collections import defaultdict

import cv2
import numpy as np
import pytest

from builders import BUSI_SHARED, make_config, write_busi
from controlbreast.data.ingest import ingest, split_counts
from controlbreast.data.preprocess import fit_to_square
from controlbreast.errors import IngestError


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
    "lipoma/": "unknown label folder 'lipoma'",
}


def test_bad_inputs_fail_with_one_line_each_and_keep_previous_output(tmp_path, busi_root):
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root)})
    ingest(config)
    before = tree_digest(config.paths.prepared)
    break_inputs(busi_root)
    with pytest.raises(IngestError) as error:
        ingest(config)
    message = str(error.value)
    assert message.startswith("5 bad input(s); set data.on_error: skip")
    for path, problem in EXPECTED_PROBLEMS.items():
        assert any(line.strip().startswith(path) and problem in line for line in message.splitlines())
    assert tree_digest(config.paths.prepared) == before
    assert not [p for p in config.paths.prepared.parent.iterdir() if p.name.startswith(".")]


def test_bad_inputs_skipped_and_listed(tmp_path, busi_root):
    break_inputs(busi_root)
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_root),
                                         "on_error": "skip"})
    rows, rejected = ingest(config)
    assert len(rows) == 14 and len(rejected) == 5
    with (config.paths.prepared / "rejected.csv").open() as stream:
        listed = {r["source_path"]: r["problem"] for r in csv.DictReader(stream)}
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
    with pytest.raises(IngestError, match="no usable images"):
        ingest(make_config(tmp_path, data={"source": "busi", "root": str(tmp_path / "empty")}))


@pytest.mark.busi
@pytest.mark.skipif(not BUSI_SHARED.is_dir(), reason="../shared/datasets/busi is not present")
def test_shared_busi_copy(tmp_path):
    config = make_config(tmp_path, data={"source": "busi", "root": str(BUSI_SHARED),
                                         "workers": 2})
    rows, rejected = ingest(config)
    assert len(rows) == 610  # 612 less one image filed both as benign and as malignant
    assert sorted(e.source_path for e in rejected) == ["benign/benign (433).png",
                                                       "malignant/malignant (145).png"]
    counts = {label: sum(r["label"] == label for r in rows)
              for label in ("benign", "malignant", "normal")}
    assert counts == {"benign": 347, "malignant": 158, "normal": 105}
    assert_groups_within_one_split(rows)
    assert len({r["group"] for r in rows}) < len(rows)  # near-duplicates were grouped
    row = next(r for r in rows if r["source_path"] == "benign/benign (100).png")
    merged = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0) > 0
    for part in ("benign (100)_mask.png", "benign (100)_mask_1.png"):
        alone = cv2.imread(str(BUSI_SHARED / "benign" / part), 0).astype(np.float32) / 255
        alone = fit_to_square(alone, 64, "pad") >= 0.5
        assert alone.any() and (merged & alone).sum() >= 0.9 * alone.sum()  # both parts kept
