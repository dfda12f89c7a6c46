import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

import controlbreast
from builders import BUSI_SHARED, assert_groups_within_one_split, make_config, write_csv_set
from controlbreast.data.ingest import ingest, split_counts
from controlbreast.data.preprocess import fit_to_square
from controlbreast.errors import IngestError, ManifestError


def tree_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(folder):
    with (folder / "manifest.csv").open() as stream:
        return list(csv.DictReader(stream))


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


def test_a_manifest_with_a_header_and_no_rows_names_the_file(tmp_path):
    data = write_csv_set(tmp_path, [], {})
    with pytest.raises(ManifestError, match=r"m\.csv: a header and no rows: nothing to ingest"):
        ingest(make_config(tmp_path, data=data))


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
