"""Params overlays: files then KEY=VALUE merged into params.yaml, validated before it is written."""

from pathlib import Path

import pytest
import yaml

from controlbreast.config import load_config
from controlbreast.errors import ConfigError
from controlbreast.overlay import apply_overlay, parse_assignment

REPO = Path(__file__).resolve().parents[1]


def test_the_ci_overlay_makes_the_projects_params_tiny(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    apply_overlay(params, [REPO / "ci" / "params-tiny.yaml"], ["evaluate.bootstrap_seed=3"])
    config = load_config(params)
    assert config.train_base.steps <= 10 and config.data.image_size == 32
    assert list(config.classifier.seeds) == [0] and config.evaluate.bootstrap_seed == 3
    assert config.train_base.learning_rate == 0.001  # keys the overlay does not name are kept


def test_values_are_read_as_yaml():
    assert parse_assignment("classifier.seeds=[0, 1]") == {"classifier": {"seeds": [0, 1]}}
    assert parse_assignment("train_base.learning_rate=1e-4") == {"train_base": {"learning_rate": 1e-4}}


@pytest.mark.parametrize("assignment, message", [("train_base.stepz=4", "stepz"),
                                                 ("no-equals-sign", "KEY=VALUE")])
def test_a_bad_override_is_refused_and_nothing_is_written(tmp_path, assignment, message):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0}))
    with pytest.raises(ConfigError, match=message):
        apply_overlay(params, [], [assignment])
    assert yaml.safe_load(params.read_text()) == {"seed": 0}


def test_nothing_to_apply_leaves_the_file_and_its_comments_alone(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0  # a comment\n")
    with pytest.raises(ConfigError, match="nothing to apply"):
        apply_overlay(params)
    assert params.read_text() == "seed: 0  # a comment\n"
