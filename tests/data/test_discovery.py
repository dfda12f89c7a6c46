"""Source labels against data.classes (data/discovery.py), through ingest."""

import pytest

from builders import assert_groups_within_one_split, make_config
from controlbreast.data.ingest import ingest
from controlbreast.errors import ConfigError


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

