"""Exact and near-duplicates and their label conflicts (data/duplicates.py), through ingest."""

import csv

import cv2
import numpy as np
import pytest

from builders import assert_groups_within_one_split, make_config, smooth_image, write_busi, write_csv_set
from controlbreast.data.ingest import ingest, rejection_counts, run_ingest
from controlbreast.errors import IngestError


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
    """Dropping more than data.near_duplicate_max_drop (0.05) of the images as near-duplicate
    conflicts stops ingest with the largest sets (a real set of 318 films once lost 116 that way,
    79 of them in one chained set)."""
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

