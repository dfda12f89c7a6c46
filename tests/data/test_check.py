"""The preflight (``controlbreast check``): params x data in seconds, every problem one line naming
the key and a value that works, all listed together; ``ingest`` runs it first."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from builders import (
    BUSI_SHARED,
    make_config,
    write_busi,
    write_csv_ultrasound,
    write_dicom_films,
    write_png_films,
)
from controlbreast.config import parse_config
from controlbreast.data.check import external_problems, preflight
from controlbreast.errors import ConfigError
from controlbreast.evaluation.config import ExternalSetConfig
from controlbreast.evaluation.external import ingest_external
from controlbreast.overlay import deep_merge

CLI = [str(Path(sys.executable).parent / "controlbreast")]
TUNED = {"n_trials": 4, "per_class": 16}  # params.yaml's tune section, as a new user leaves it


@pytest.fixture(autouse=True)
def no_secret(monkeypatch):
    monkeypatch.delenv("CONTROLBREAST_GROUP_SECRET", raising=False)
    monkeypatch.delenv("CONTROLBREAST_GROUP_SECRET_FILE", raising=False)


@pytest.fixture(scope="module")
def busi_sized(tmp_path_factory) -> Path:
    """A BUSI-layout folder as large as the release's training needs show (160 real PNGs and masks
    per class): 0.15 x its ~336 training images is more than 16 x 3 synthetic ones."""
    return write_busi(tmp_path_factory.mktemp("busi-sized") / "busi", per_class=160)


def test_the_readme_minimal_busi_config_fails_in_seconds_naming_tune_per_class(tmp_path, busi_sized):
    """Before: `tune` stopped with this after both diffusion trainings (twenty minutes on BUSI)."""
    config = make_config(tmp_path, data={"source": "busi", "root": str(busi_sized)}, tune=TUNED)
    start = time.perf_counter()
    problems = preflight(config).problems
    assert time.perf_counter() - start < 10
    assert len(problems) == 1 and problems[0].startswith("tune.mix_ratio.high 0.15 needs ")
    assert "set tune.per_class to" in problems[0] and "(or auto)" in problems[0]
    auto = make_config(tmp_path, data={"source": "busi", "root": str(busi_sized)},
                       tune={**TUNED, "per_class": "auto"})
    assert preflight(auto).problems == []


@pytest.mark.skipif(not BUSI_SHARED.is_dir(), reason="the BUSI release is not in ../shared/datasets")
def test_the_busi_release_with_the_readme_minimal_config(tmp_path):
    config = make_config(tmp_path, data={"source": "busi", "root": str(BUSI_SHARED)}, tune=TUNED)
    found = preflight(config)
    assert [p.split(" needs ")[0] for p in found.problems] == ["tune.mix_ratio.high 0.15"]
    assert 400 < sum(n for (split, _), n in found.counts.items() if split == "train") < 450


def test_every_problem_is_listed_together_and_the_command_exits_non_zero(tmp_path, busi_root):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "paths": {"prepared": str(tmp_path / "prepared")},
        "data": {"source": "busi", "root": str(busi_root), "classes": ["normal", "benign", "malignnat"]},
        "controls": {"kind": "mask"}, "generate": {"per_class": 2},
        "classifier": {"real_fractions": [0.01, 1.0]}, "evaluate": {"external": []}}))
    result = subprocess.run([*CLI, "check", "--params", str(params)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: 4 problem(s) with {params} and its data (`controlbreast check`):"
    assert lines[1].startswith("  data.classes entry 'malignnat' matches no label in folder")
    assert [line.split()[0] for line in lines[1:]] == ["data.classes", "tune.mix_ratio.low",
                                                       "generate.per_class", "classifier.real_fractions"]
    assert "set tune.mix_ratio.low to at least 0.125" in lines[2]
    assert "set generate.per_class: auto (or at least 4)" in lines[3] and "use at least 0.12" in lines[4]


def test_the_ingest_stage_checks_before_it_reads_an_image(tmp_path, busi_root):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "paths": {"prepared": str(tmp_path / "prepared"), "metrics": str(tmp_path / "metrics"),
                  "mlruns": str(tmp_path / "mlruns")},
        "data": {"source": "busi", "root": str(busi_root)}, "generate": {"per_class": 1},
        "evaluate": {"external": []}}))
    result = subprocess.run([*CLI, "ingest", "--params", str(params)], capture_output=True, text=True)
    assert result.returncode == 2 and "generate.per_class 1, but the arms draw up to" in result.stderr
    assert not (tmp_path / "prepared").exists()


def test_lesion_images_without_masks_name_require_lesion_masks(tmp_path):
    data = write_csv_ultrasound(tmp_path / "us", masks=False)
    problems = preflight(make_config(tmp_path, data=data)).problems
    assert problems == ["data.require_lesion_masks true: 12 image(s) of lesion labels ['benign', "
                        "'malignant'] have no mask (first u1.png); add their mask_path, or set "
                        "data.require_lesion_masks: false (edges-only controls)"]
    edges_only = make_config(tmp_path, data={**data, "require_lesion_masks": False},
                             controls={"kind": "mask"})
    assert preflight(edges_only).problems == ["controls.kind needs lesion masks, but none of the 18 images "
                                              "has one: set controls.kind: edges"]


def test_a_class_too_small_for_every_split_and_a_starved_mix_ratio(tmp_path):
    data = write_csv_ultrasound(tmp_path / "us", masks=True)
    manifest = Path(data["manifest"])
    rows = manifest.read_text().splitlines()
    kept = [row for row in rows if "malignant" not in row or row.startswith("u2.")]  # one malignant image
    manifest.write_text("\n".join(kept) + "\n")
    config = make_config(tmp_path, data=data, tune={"n_trials": 2, "per_class": "auto"})
    problems = preflight(config).problems
    assert problems[0].startswith("data.split gives class 'malignant' no val/test image (1 in all")
    assert problems[1] == ("tune.mix_ratio.low 0.03 draws no synthetic image of class 'malignant' (1 "
                           "training images): set tune.mix_ratio.low to at least 0.5")


def test_films_without_a_pixel_spacing_fail_the_check_where_mm_per_px_needs_one(tmp_path):
    data = write_png_films(tmp_path)
    problems = preflight(make_config(tmp_path, data=data)).problems
    assert problems[:1] == [f"data.patches.mm_per_px 0.5 needs each film's pixel spacing, but 4 of 4 have "
                            f"none (first m0.png): set data.pixel_spacing_mm (e.g. 0.07), add a "
                            f"pixel_spacing_mm column to {data['manifest']}, or set data.patches.mm_per_px: "
                            "null to size patches by data.patches.breast_fraction"]
    spaced = preflight(make_config(tmp_path, data={**data, "pixel_spacing_mm": 0.1})).problems
    assert problems[1:] == spaced and not [p for p in spaced if "spacing" in p]  # the tiny set's splits


def test_patient_ids_in_dicom_headers_need_the_secret(tmp_path, monkeypatch):
    data = write_dicom_films(tmp_path / "films")
    problems = preflight(make_config(tmp_path, data={**data, "anonymise_paths": True})).problems
    fix = "set CONTROLBREAST_GROUP_SECRET (any secret string) or data.allow_unkeyed_groups: true"
    assert problems[:2] == [f"4 DICOM file(s) carry a PatientID (first f0.dcm) but there is no secret to "
                            f"hash it with: {fix}", f"data.anonymise_paths true needs a secret: {fix}"]
    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", "test-secret")
    keyed = preflight(make_config(tmp_path, data=data)).problems
    assert keyed == problems[2:] and not [p for p in keyed if "spacing" in p]  # spacing from the headers


MAMMO_PHANTOM = {"modality": "mammography", "patients_per_class": 4, "render_size": 128}


def test_an_external_set_of_another_modality_fails_check_and_ingest_external(tmp_path):
    """Before: ingest-external turned the default ultrasound phantom into "mammography" patches."""
    ultrasound = ExternalSetConfig(name="scanner-b", source="phantom", phantom={"patients_per_class": 2})
    config = make_config(tmp_path, phantom=MAMMO_PHANTOM, data={"modality": "mammography"},
                         evaluate={"external": [ultrasound.model_dump()]})
    problem = ("evaluate.external 'scanner-b' holds ultrasound images but the training data is mammography: "
               "set its phantom.modality: mammography, or leave it out of evaluate.external")
    assert preflight(config).problems == [problem]
    with pytest.raises(ConfigError, match="holds ultrasound images but the training data is mammography"):
        ingest_external(config, ultrasound)  # (the training set's modality: the check's, before ingest)
    films = ExternalSetConfig(name="site-b", source="phantom", phantom={**MAMMO_PHANTOM, "seed": 9})
    assert external_problems(config, films, "mammography") == []


def test_an_external_set_with_none_of_the_classes_is_named(tmp_path):
    data = write_csv_ultrasound(tmp_path / "us", masks=True)
    external = ExternalSetConfig(name="site-c", source="csv", root=data["root"], manifest=data["manifest"])
    config = make_config(tmp_path, data={"classes": ["no_cancer", "cancer"],
                                         "label_map": {"normal": "no_cancer", "benign": "no_cancer",
                                                       "malignant": "cancer"}, "lesion_labels": ["benign"]})
    own = config.model_copy(update={"data": config.data.model_copy(update={"label_map": {}})})
    assert external_problems(own, external, "ultrasound") == [
        "evaluate.external 'site-c': none of its labels ['benign', 'malignant', 'normal'] is in data.classes "
        "['no_cancer', 'cancer']: give it a label_map"]
    assert external_problems(config, external, "ultrasound") == []  # data.label_map applies


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["cpu-quick", "mammo-cpu", "busi-cpu", "busi-gpu"])
def test_every_profile_passes_the_check_on_its_data(tmp_path, name):
    """Before: mammo-cpu's ~900 training patches outgrew tune.per_class 16 (tune failed after both
    trainings) and its external set was the ultrasound phantom."""
    raw = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                     yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text()) or {})
    if raw["data"]["source"] == "busi":
        if not BUSI_SHARED.is_dir():
            pytest.skip("the BUSI release is not in ../shared/datasets")
        raw["data"]["root"] = str(BUSI_SHARED)
    raw["paths"] = {key: str(tmp_path / key) for key in raw["paths"]}
    assert preflight(parse_config(raw, name)).problems == []
