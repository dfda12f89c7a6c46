"""Mammograms as first-class data: crop, laterality, DICOM tags, de-identification, patches."""

import csv
from collections import defaultdict

import cv2
import numpy as np
import pytest
import yaml

from builders import make_config, mammogram, write_dicom, write_png_films
from controlbreast.data.config import MammographyConfig, PatchConfig
from controlbreast.data.ingest import run_ingest
from controlbreast.data.mammo import orient
from controlbreast.data.patches import cut, plan_patches
from controlbreast.data.preprocess import fit_mask_to_square, fit_to_square
from controlbreast.data.splits import identity_thumbnail, similarity
from controlbreast.errors import IngestError

MAMMO = MammographyConfig()


def test_crop_keeps_the_whole_breast_and_drops_background_and_label():
    film, mask = mammogram(0, "L")
    crop, lesion, view = orient(film, mask, 12, MAMMO)
    top, left, height, width = view.box
    tissue = film > 0
    tissue[-12:, -30:] = False  # the burned-in label is not breast
    inside = np.zeros_like(tissue)
    inside[top:top + height, left:left + width] = True
    assert tissue[~inside].sum() == 0  # every tissue pixel is in the crop
    assert height * width < 0.75 * film.size  # and a good part of the black film is not
    assert crop.max() < 4000  # the label (value 4000) is gone
    assert lesion.sum() == mask.sum() and not view.flipped and view.laterality == "L"


def test_both_lateralities_face_the_same_way_with_masks_flipped_alike():
    left_film, left_mask = mammogram(3, "L")
    right_film, right_mask = mammogram(3, "R")
    left, left_lesion, left_view = orient(left_film, left_mask, 12, MAMMO)
    right, right_lesion, right_view = orient(right_film, right_mask, 12, MAMMO)
    assert (left_view.flipped, right_view.flipped) == (False, True)
    assert (left_view.laterality, right_view.laterality) == ("L", "R")
    np.testing.assert_array_equal(left, right)  # the same breast, mirrored back
    np.testing.assert_array_equal(left_lesion, right_lesion)
    columns = right.astype(float).sum(axis=0)
    assert columns[: columns.size // 2].sum() > columns[columns.size // 2:].sum()  # chest wall left
    ys, xs = np.nonzero(right_lesion)
    assert right[ys, xs].min() > right[right > 0].mean()  # the mask still sits on the bright lesion
    _, _, tagged = orient(right_film, right_mask, 12, MAMMO, laterality="L")
    assert tagged.laterality == "L" and tagged.flipped  # a tag is recorded; the tissue turns it


def test_patches_hold_their_lesion_and_background_patches_none():
    film, mask = mammogram(5, "R", shape=(320, 240), lesion=(150, 90, 10))
    crop, lesion, _ = orient(film, mask, 12, MAMMO)
    breast = crop > 0
    cfg = PatchConfig(enabled=True, background=4, jitter=0.2)
    boxes = plan_patches(breast, lesion, 64, cfg, seed=1)
    kinds = [b.kind for b in boxes]
    assert kinds == ["lesion"] + ["background"] * 4
    assert cut(lesion, boxes[0]).sum() == lesion.sum()  # the whole lesion is in its patch
    for box in boxes[1:]:
        assert not cut(lesion, box).any() and cut(breast, box).mean() > 0.9
    assert plan_patches(breast, lesion, 64, cfg, seed=1) == boxes  # seeded


def write_mammo_set(root, patients=8):
    """A CSV set of DICOM MG films, two views of each breast-side, a lesion in half the patients."""
    root.mkdir()
    lines = ["path,label,mask_path"]
    for patient in range(patients):
        label = "malignant" if patient % 2 else "normal"
        for view in range(2):
            side = "LR"[patient % 2 ^ view % 2]
            lesion = (70 + 10 * view, 40, 7) if label == "malignant" else None
            film, mask = mammogram(100 * patient + view, side, lesion=lesion)
            name = f"f{patient:02d}{view}"
            write_dicom(root / f"{name}.dcm", film, patient=f"Jane-{patient:03d}", Modality="MG",
                        ImageLaterality=side, PixelSpacing=[0.5, 0.5], PatientName=f"Roe^Mary{patient}")
            cv2.imwrite(str(root / f"{name}_mask.png"), mask.astype(np.uint8) * 255)
            lines.append(f"{name}.dcm,{label},{name}_mask.png")
    (root.parent / "set.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def mammo_set(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", "test-secret")
    return write_mammo_set(tmp_path / "films")


def mammo_config(tmp_path, root, **data):
    return make_config(tmp_path, data={"source": "csv", "root": str(root),
                                       "manifest": str(root.parent / "set.csv"),
                                       "classes": ["normal", "malignant"], "lesion_labels": ["malignant"],
                                       "image_size": 32, **data})


def test_dicom_mammograms_are_detected_cropped_turned_and_de_identified(tmp_path, mammo_set):
    config = mammo_config(tmp_path, mammo_set)
    result = run_ingest(config)
    rows = result.rows
    assert {r["modality"] for r in rows} == {"mammography"} and len(rows) == 16
    assert {(r["laterality"], r["flipped"]) for r in rows} == {("L", False), ("R", True)}
    assert {r["pixel_spacing_mm"] for r in rows} == {0.5}
    assert all(r["crop_height"] * r["crop_width"] < 160 * 120 for r in rows)
    assert result.merges["pairs_across_patients"] == 0
    leaked = [b"Jane-", b"Roe^Mary", b"Mary", b"19610704", b"20240219", b"Doe^Jane"]
    outputs = [p for p in (config.paths.prepared, config.paths.metrics) if p.exists()]
    for path in (f for folder in outputs for f in folder.rglob("*") if f.is_file()):
        data = path.read_bytes()
        assert not [word for word in leaked if word in data], path
    groups = defaultdict(set)
    for row in rows:
        groups[row["group"]].add(row["split"])
    assert len(groups) == 8 and all(len(s) == 1 for s in groups.values())


def test_no_identity_reaches_mlflow_the_metrics_or_the_log(tmp_path, mammo_set, capsys):
    from controlbreast.stages import ingest as stage

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(mammo_config(tmp_path, mammo_set).model_dump(mode="json")))
    stage.main(params)
    logged = capsys.readouterr()
    texts = [logged.out.encode(), logged.err.encode()]
    texts += [f.read_bytes() for folder in ("mlruns", "metrics", "prepared")
              for f in (tmp_path / folder).rglob("*") if f.is_file()]
    assert len(texts) > 10 and b"near_duplicates" in b"".join(texts)
    for word in (b"Jane-00", b"Roe^Mary", b"19610704", b"20240219"):
        assert not any(word in text for text in texts), word


def test_multi_frame_dicom_is_one_bad_input(tmp_path, mammo_set):
    write_dicom(mammo_set / "f000.dcm", np.zeros((2, 160, 120)), Modality="MG")
    with pytest.raises(IngestError, match=r"f000.dcm: multi-frame DICOM \(2 frames"):
        run_ingest(mammo_config(tmp_path, mammo_set))
    rows = run_ingest(mammo_config(tmp_path, mammo_set, on_error="skip")).rows
    assert "f000.dcm" not in {r["source_path"] for r in rows} and len(rows) == 15


def test_empty_lesion_mask_is_bad_input(tmp_path, mammo_set):
    cv2.imwrite(str(mammo_set / "f010_mask.png"), np.zeros((160, 120), np.uint8))
    empty = r"f010\.dcm: label 'malignant' is a lesion label but its mask is empty"
    with pytest.raises(IngestError, match=empty):
        run_ingest(mammo_config(tmp_path, mammo_set))
    result = run_ingest(mammo_config(tmp_path, mammo_set, on_error="skip"))
    assert len(result.rows) == 15


def test_patches_inherit_their_patient_and_split(tmp_path, mammo_set):
    patches = {"enabled": True, "mm_per_px": 0.5, "background": 2}
    config = mammo_config(tmp_path, mammo_set, patches=patches)
    rows = run_ingest(config).rows
    by_kind = defaultdict(list)
    for row in rows:
        by_kind[row["patch_kind"]].append(row)
    assert len(by_kind["lesion"]) == 8 and len(by_kind["background"]) == 32
    assert all(r["label"] == "malignant" for r in by_kind["lesion"])
    assert all(r["label"] == "normal" and r["source_label"] == "normal" for r in by_kind["background"])
    assert {r["patch_side"] for r in rows} == {32}  # 32 px at 0.5 mm/px from 0.5 mm pixels
    for row in rows:
        mask = cv2.imread(str(config.paths.prepared / "masks" / f"{row['id']}.png"), 0)
        assert mask.shape == (32, 32) and mask.any() == (row["patch_kind"] == "lesion")
    splits = defaultdict(set)
    for row in rows:
        splits[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in splits.values())
    images = {r["source_image"] for r in rows}
    assert len(images) == 16 and all(r["id"].startswith(r["source_image"] + "-") for r in rows)
    with (config.paths.prepared / "manifest.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == len(rows)


def test_a_lesion_smaller_than_an_output_pixel_survives_resizing():
    mask = np.zeros((1024, 1024), bool)
    mask[500:506, 300:306] = True  # 36 pixels: a 0.5 threshold at 64 px loses it
    assert not (fit_to_square(mask.astype(np.float32), 64, "pad") >= 0.5).any()
    kept = fit_mask_to_square(mask, 64, "pad")
    assert kept.sum() >= 1 and kept[31, 18]
    wide = fit_mask_to_square(np.eye(8, 16, dtype=bool), 64, "pad")  # growing: nearest pixels
    assert wide.sum() == 8 * 4 * 4


def test_near_duplicate_confirmation_keeps_different_womens_dark_films_apart():
    films = [orient(*mammogram(seed, "L", lesion=None), 12, MAMMO)[0] for seed in (11, 12)]
    dark = [np.clip(f.astype(np.float32) / 4095 * 255 * 0.4, 0, 255).astype(np.uint8) for f in films]
    first, second = (identity_thumbnail(d) for d in dark)
    assert similarity(first, second) < 0.5  # same silhouette, different tissue
    copy = np.clip(dark[0].astype(np.float32) * 1.1 + 3, 0, 255).astype(np.uint8)  # re-exposed
    assert similarity(first, identity_thumbnail(np.roll(copy, 1, axis=1))) > 0.9


def test_png_films_with_a_laterality_column_and_declared_depth(tmp_path):
    """16-bit PNG films (12 bits used): data.modality and data.bit_depth say what the files
    cannot, and the CSV's laterality column is recorded; the tissue still decides the turn."""
    root = tmp_path / "png"
    root.mkdir()
    lines = ["path,label,mask_path,group_id,laterality"]
    for n, side in enumerate(("L", "R", "L", "R")):
        film, mask = mammogram(40 + n, side)
        cv2.imwrite(str(root / f"m{n}.png"), film)
        cv2.imwrite(str(root / f"m{n}_mask.png"), mask.astype(np.uint8) * 255)
        # a set displayed the other way round: the column says which breast, the tissue how it lies
        label = ("benign", "malignant")[n % 2]
        lines.append(f"m{n}.png,{label},m{n}_mask.png,{n},{'right' if side == 'L' else 'left'}")
    (tmp_path / "set.csv").write_text("\n".join(lines) + "\n")
    data = {"source": "csv", "root": str(root), "manifest": str(tmp_path / "set.csv"),
            "classes": ["benign", "malignant"],
            "modality": "mammography", "bit_depth": 12, "image_size": 32, "allow_unkeyed_groups": True}
    config = make_config(tmp_path, data=data)
    rows = run_ingest(config).rows
    assert [(r["laterality"], r["flipped"], r["bit_depth"]) for r in rows] == [
        ("R", False, 12), ("L", True, 12), ("R", False, 12), ("L", True, 12)]
    image = cv2.imread(str(config.paths.prepared / "images" / f"{rows[0]['id']}.png"), 0)
    assert image.max() > 150  # scaled by 12 bits, not 16 (which would leave it below 70)


def test_png_films_take_their_pixel_spacing_from_params_or_the_manifest(tmp_path):
    """PNG has no spacing tag: data.pixel_spacing_mm gives one for the whole set, a manifest column
    one per film (it wins); patches then span image_size x mm_per_px mm (32 x 0.5 / 0.25 = 64 px)."""
    data = write_png_films(tmp_path / "a")
    rows = run_ingest(make_config(tmp_path / "a", data={**data, "pixel_spacing_mm": 0.25})).rows
    assert {r["pixel_spacing_mm"] for r in rows} == {0.25} and {r["patch_side"] for r in rows} == {64}
    data = write_png_films(tmp_path / "b", ["0.5", "0.5", "0.25", "0.5"])
    rows = run_ingest(make_config(tmp_path / "b", data={**data, "pixel_spacing_mm": 0.25})).rows
    assert sorted({(r["pixel_spacing_mm"], r["patch_side"]) for r in rows}) == [(0.25, 64), (0.5, 32)]


def test_patches_in_mm_of_films_without_a_spacing_are_an_error_not_another_size(tmp_path):
    """Before: mm_per_px was silently ignored and patches spanned a fraction of each breast."""
    data = write_png_films(tmp_path)
    with pytest.raises(IngestError, match=r"m0\.png: pixel spacing unknown, and data\.patches\.mm_per_px "
                                          r"needs it: set data\.pixel_spacing_mm"):
        run_ingest(make_config(tmp_path, data=data))
    by_width = {**data, "patches": {**data["patches"], "mm_per_px": None, "breast_fraction": 0.5}}
    rows = run_ingest(make_config(tmp_path, data=by_width)).rows
    assert {r["pixel_spacing_mm"] for r in rows} == {0.0} and len({r["patch_side"] for r in rows}) > 1
