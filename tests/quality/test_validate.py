import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from builders import BUSI_SHARED, make_config
from controlbreast.controls.build import make_controls
from controlbreast.data.ingest import ingest
from controlbreast.errors import DataQualityError
from controlbreast.quality.validate import validate

PHANTOM = {"patients_per_class": 12, "max_images_per_patient": 2, "render_size": 64}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A prepared phantom set with its controls, built once; tests break copies of it."""
    base = tmp_path_factory.mktemp("clean")
    config = make_config(base, phantom=PHANTOM)
    ingest(config)
    make_controls(config)
    return base


@pytest.fixture
def data(tmp_path, clean):
    """(config, manifest) over a fresh copy of the clean set."""
    for name in ("prepared", "controls"):
        shutil.copytree(clean / name, tmp_path / name)
    config = make_config(tmp_path, phantom=PHANTOM)
    return config, pd.read_csv(tmp_path / "prepared" / "manifest.csv", dtype=str)


def one(manifest, split, label=None):
    rows = manifest[(manifest["split"] == split) & (manifest["label"] != "normal")]
    if label is not None:
        rows = rows[rows["label"] == label]
    return rows["id"].iloc[0]


def failing(config, target="prepared"):
    with pytest.raises(DataQualityError) as error:
        validate(config, target)
    suffix = "" if target == "prepared" else "_synthetic"
    report = json.loads((config.paths.metrics / f"data_quality{suffix}.json").read_text())
    failed = {o["expectation"]: set(o["offending_ids"]) for o in report["expectations"]
              if not o["passed"]}
    return failed, str(error.value)


def image_path(config, image_id):
    return config.paths.prepared / "images" / f"{image_id}.png"


def test_clean_data_passes_and_reports(data):
    config, _ = data
    report = validate(config, "prepared")
    assert report["passed"] and len(report["expectations"]) >= 20
    assert set(report["class_balance"]) == {f"{s}/{c}" for s in ("train", "val", "test")
                                            for c in ("normal", "benign", "malignant")}
    assert (config.paths.reports / "data_quality" / "index.html").is_file()


def test_exact_duplicate_across_train_and_test(data):
    config, manifest = data
    a, b = one(manifest, "train"), one(manifest, "test")
    shutil.copy(image_path(config, a), image_path(config, b))
    failed, message = failing(config)
    assert failed["no exact duplicate images"] == {a, b}
    assert failed["no near-duplicate across splits"] == {a, b}
    assert f"FAILED no exact duplicate images: {a} [" in message and "] (pixel_sha256=" in message


@pytest.mark.parametrize("change", ["reencoded", "shifted", "resized"])
def test_near_duplicate_across_splits(data, change):
    config, manifest = data
    a, b = one(manifest, "train"), one(manifest, "val")
    image = cv2.imread(str(image_path(config, a)), cv2.IMREAD_GRAYSCALE)
    if change == "reencoded":
        copy = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 0)
    elif change == "shifted":
        copy = np.roll(image, 1, axis=1)
    else:
        copy = cv2.resize(cv2.resize(image, (48, 48)), (64, 64))
    cv2.imwrite(str(image_path(config, b)), copy)
    failed, message = failing(config)
    assert set(failed) == {"no near-duplicate across splits"}
    assert failed["no near-duplicate across splits"] == {a, b}
    assert "[threshold: quality.near_duplicate_bits]" in message


def test_blank_image(data):
    config, manifest = data
    b = one(manifest, "test")
    cv2.imwrite(str(image_path(config, b)), np.full((64, 64), 90, np.uint8))
    failed, message = failing(config)
    assert failed["images are not blank"] == {b}
    assert "[threshold: quality.min_std]" in message


def test_a_failure_names_the_source_file_beside_the_prepared_id(data):
    config, manifest = data
    b = one(manifest, "train")
    source = manifest.loc[manifest["id"] == b, "source_path"].item()
    cv2.imwrite(str(image_path(config, b)), np.full((64, 64), 90, np.uint8))
    _, message = failing(config)
    assert f"FAILED images are not blank: {b} [{source}] (std_intensity=0)" in message


def test_mask_of_the_wrong_size(data):
    config, manifest = data
    b = one(manifest, "train", "malignant")
    cv2.imwrite(str(config.paths.prepared / "masks" / f"{b}.png"), np.full((32, 32), 255, np.uint8))
    failed, _ = failing(config)
    assert failed["masks are readable and the size of their image"] == {b}


def test_lesion_image_without_mask_unless_masks_are_optional(tmp_path, data):
    config, manifest = data
    b = one(manifest, "train", "benign")
    manifest.loc[manifest["id"] == b, "has_mask"] = "False"
    manifest.to_csv(config.paths.prepared / "manifest.csv", index=False)
    (config.paths.prepared / "masks" / f"{b}.png").unlink()
    failed, message = failing(config)
    assert failed["lesion images have a mask"] == {b}
    assert "data.require_lesion_masks" in message
    relaxed = make_config(tmp_path, phantom=PHANTOM, data={"require_lesion_masks": False})
    assert validate(relaxed, "prepared")["passed"]


def test_missing_class_in_val(data):
    config, manifest = data
    manifest.loc[(manifest["split"] == "val") & (manifest["label"] == "benign"), "split"] = "train"
    manifest.to_csv(config.paths.prepared / "manifest.csv", index=False)
    failed, _ = failing(config)
    assert failed["every class is present in every split"] == {"val/benign"}


def test_missing_file_and_missing_control(data):
    config, manifest = data
    a, b = one(manifest, "train"), one(manifest, "val")
    image_path(config, a).unlink()
    (config.paths.controls / "edges" / f"{b}.png").unlink()
    failed, _ = failing(config)
    assert failed["every file is present and readable"] == {a}
    assert b in failed["every image has its controls, of its size"]


def write_synthetic(config, manifest, control_ids):
    folder = config.paths.synthetic
    (folder / "images").mkdir(parents=True)
    rows = []
    for n, control in enumerate(control_ids):
        image = cv2.imread(str(image_path(config, control)), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(folder / "images" / f"syn-{n:04d}.png"), np.flipud(image))
        label = manifest.set_index("id").loc[control, "label"]
        rows.append({"id": f"syn-{n:04d}", "label": label, "control_id": control})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


def test_synthetic_must_come_from_training_controls(tmp_path, data):
    config, manifest = data
    config = make_config(tmp_path, phantom=PHANTOM, paths={"synthetic": str(tmp_path / "syn")})
    train = list(manifest[manifest["split"] == "train"]["id"][:4])
    write_synthetic(config, manifest, [*train, one(manifest, "test")])
    failed, _ = failing(config, "synthetic")
    assert failed == {"every synthetic image comes from a training-split control": {"syn-0004"}}


def test_synthetic_from_training_controls_passes(tmp_path, data):
    config, manifest = data
    config = make_config(tmp_path, phantom=PHANTOM, paths={"synthetic": str(tmp_path / "syn")})
    write_synthetic(config, manifest, list(manifest[manifest["split"] == "train"]["id"][:5]))
    assert validate(config, "synthetic")["passed"]


@pytest.mark.busi
@pytest.mark.skipif(not BUSI_SHARED.is_dir(), reason="../shared/datasets/busi is not present")
def test_shared_busi_copy_passes_the_gate_with_defaults(tmp_path):
    config = make_config(tmp_path, data={"source": "busi", "root": str(BUSI_SHARED), "workers": 2})
    ingest(config)
    make_controls(config)
    report = validate(config, "prepared")
    assert report["passed"] and report["images"] == 602


MAMMO = {"modality": "mammography", "patients_per_class": 4, "max_images_per_patient": 1, "render_size": 256}


@pytest.fixture
def patches(tmp_path):
    """(config, manifest) of mammography phantom patches with their controls."""
    config = make_config(tmp_path, phantom=MAMMO, quality={"split_tolerance": 0.3},  # 12 films
                         data={"image_size": 32, "patches": {"enabled": True, "mm_per_px": 0.5}})
    ingest(config)
    make_controls(config)
    return config, pd.read_csv(tmp_path / "prepared" / "manifest.csv", dtype=str)


def test_mammogram_patches_have_their_own_blank_and_coverage_bounds(patches):
    """Before: a smooth patch of fatty tissue (std 0.012 of the range) failed quality.min_std 0.02
    and a patch inside a mass larger than itself failed max_mask_coverage 0.7, as 18 and 22 real
    0.2 mm/px patches did; a constant patch still fails (quality.mammography_min_std)."""
    config, manifest = patches
    lesion = manifest[manifest["patch_kind"] == "lesion"]["id"].tolist()
    smooth = np.tile(np.linspace(100, 110, 32, dtype=np.float32), (32, 1)).astype(np.uint8)
    cv2.imwrite(str(image_path(config, lesion[0])), smooth)
    cv2.imwrite(str(config.paths.prepared / "masks" / f"{lesion[1]}.png"), np.full((32, 32), 255, np.uint8))
    assert validate(config, "prepared")["passed"]
    cv2.imwrite(str(image_path(config, lesion[0])), np.full((32, 32), 90, np.uint8))
    failed, message = failing(config)
    assert failed == {"mammograms are not blank": {lesion[0]}}
    assert "[threshold: quality.mammography_min_std]" in message
