import csv

import cv2
import numpy as np
import pytest

from builders import disc_mask, make_config, smooth_image, write_dicom
from controlbreast.config import parse_config
from controlbreast.data.ingest import ingest
from controlbreast.data.privacy import anonymous_path, keyed_group, read_secret
from controlbreast.errors import ConfigError

SECRET = "correct-horse-battery-staple-42"


def write_patients(tmp_path):
    """A csv source whose file names and ids identify patients: p001_left.png (P-1), a DICOM
    carrying PatientID P-7."""
    root = tmp_path / "set"
    (root / "scans").mkdir(parents=True)
    cv2.imwrite(str(root / "scans" / "p001_left.png"), smooth_image(1))
    cv2.imwrite(str(root / "scans" / "p001_left_mask.png"), disc_mask((96, 128), (40, 40), 10))
    cv2.imwrite(str(root / "scans" / "p002_right.png"), smooth_image(2))
    write_dicom(root / "scans" / "p007.dcm", smooth_image(3).astype(np.uint16) * 16, patient="P-7")
    (tmp_path / "m.csv").write_text(
        "path,label,mask_path,group_id\nscans/p001_left.png,benign,scans/p001_left_mask.png,P-1\n"
        "scans/p002_right.png,normal,,P-2\nscans/p007.dcm,normal,,\n")
    return {"source": "csv", "root": str(root), "manifest": str(tmp_path / "m.csv"),
            "classes": ["normal", "benign"]}


def prepared_bytes(folder):
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_secret_ids_and_names_never_reach_the_prepared_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", SECRET)
    config = make_config(tmp_path, data={**write_patients(tmp_path), "anonymise_paths": True})
    rows, _ = ingest(config)
    written = prepared_bytes(config.paths.prepared)
    for leak in (SECRET, "P-1", "P-7", "p001", "p002", "p007", "scans/"):
        assert leak.encode() not in written, leak
    assert [r["source_path"] for r in rows] == [anonymous_path(p, SECRET.encode()) for p in
                                                ("scans/p001_left.png", "scans/p002_right.png",
                                                 "scans/p007.dcm")]
    assert rows[2]["source_path"].endswith(".dcm") and rows[2]["source_path"].startswith("file-")
    assert rows[0]["group"] == keyed_group("P-1", SECRET.encode(), "") != rows[1]["group"]
    assert rows[2]["group"] == keyed_group("P-7", SECRET.encode(), "")


def test_rejected_paths_are_anonymised_too(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", SECRET)
    data = write_patients(tmp_path)
    (tmp_path / "set" / "scans" / "p002_right.png").write_bytes(b"")  # a bad input
    with (tmp_path / "m.csv").open("a") as stream:
        stream.write("scans/p003.png,cyst,,\n")  # a label outside data.classes
    config = make_config(tmp_path, data={**data, "anonymise_paths": True, "on_error": "skip"})
    ingest(config)
    with (config.paths.prepared / "rejected.csv").open() as stream:
        assert [r["source_path"] for r in csv.DictReader(stream)] == [
            anonymous_path(p, SECRET.encode()) for p in ("scans/p003.png", "scans/p002_right.png")]
    written = prepared_bytes(config.paths.prepared)
    assert b"p002" not in written and b"p003" not in written


def test_groups_depend_on_the_secret(tmp_path, monkeypatch):
    data = write_patients(tmp_path)
    groups = []
    for secret in ("first-secret", "second-secret"):
        monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", secret)
        groups.append([r["group"] for r in ingest(make_config(tmp_path, data=data))[0]])
    assert groups[0][0] != groups[1][0] and groups[0][2] != groups[1][2]
    assert len(groups[0][0]) == len("pid-") + 32


def test_real_ids_without_a_secret_are_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CONTROLBREAST_GROUP_SECRET", raising=False)
    monkeypatch.delenv("CONTROLBREAST_GROUP_SECRET_FILE", raising=False)
    data = write_patients(tmp_path)
    with pytest.raises(ConfigError, match=r"has patient ids but no secret to hash them with: set "
                                          r"CONTROLBREAST_GROUP_SECRET"):
        ingest(make_config(tmp_path, data=data))
    (tmp_path / "m.csv").write_text("path,label,mask_path\n"
                                    "scans/p001_left.png,benign,scans/p001_left_mask.png\n"
                                    "scans/p007.dcm,normal,\n")  # the only id is inside the DICOM
    with pytest.raises(ConfigError, match=r"scans/p007\.dcm has patient ids but no secret"):
        ingest(make_config(tmp_path, data={**data, "workers": 2}))
    rows, _ = ingest(make_config(tmp_path, data={**data, "allow_unkeyed_groups": True}))
    assert next(r for r in rows if r["source_path"] == "scans/p007.dcm")["group"].startswith("pid-")
    assert "can be recovered by enumeration" in capsys.readouterr().err


def test_secret_file_outside_the_repository(tmp_path, monkeypatch):
    repo, outside = tmp_path / "repo", tmp_path / "keys"
    repo.mkdir()
    outside.mkdir()
    (outside / "secret").write_text(SECRET + "\n")
    assert read_secret({"CONTROLBREAST_GROUP_SECRET_FILE": str(outside / "secret")}, repo) == \
        SECRET.encode()
    (repo / "secret").write_text(SECRET)
    with pytest.raises(ConfigError, match="is inside the repository"):
        read_secret({"CONTROLBREAST_GROUP_SECRET_FILE": str(repo / "secret")}, repo)
    (outside / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret({"CONTROLBREAST_GROUP_SECRET_FILE": str(outside / "empty")}, repo)
    assert read_secret({}, repo) is None


def test_old_params_with_a_salt_are_refused():
    with pytest.raises(ConfigError, match=r"data.group_salt was removed.*CONTROLBREAST_GROUP_SECRET"):
        parse_config({"data": {"group_salt": "controlbreast"}})
