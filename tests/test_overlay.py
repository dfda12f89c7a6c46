"""Params overlays: files then KEY=VALUE merged into params.yaml, validated before it is written."""

import difflib
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controlbreast.cli import app
from controlbreast.config import load_config, read_params
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


def _keys(mapping: dict) -> list[str]:
    """Every key of a nested mapping (and of the mappings in its lists), at any depth, once per place
    it is named."""
    def inner(value) -> list[str]:
        if isinstance(value, dict):
            return _keys(value)
        return [name for item in value for name in inner(item)] if isinstance(value, list) else []

    return [name for key, value in mapping.items() for name in [key, *inner(value)]]


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


@pytest.mark.parametrize("profile", sorted((REPO / "profiles").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_recipe_changes_only_the_keys_it_names_and_keeps_every_comment(tmp_path, profile):
    params = tmp_path / "params.yaml"
    before = (REPO / "params.yaml").read_text()
    params.write_text(before)
    merged = apply_overlay(params, [profile])
    after = params.read_text()
    changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
               if line[:2] in ("- ", "+ ") and line[2:].strip() and not line[2:].lstrip().startswith("#")]
    named = _keys(read_params(profile))
    assert bool(changed) == bool(named) and len(changed) <= 2 * len(named)
    written = [line for line in changed if line.startswith("+ ")]  # a replaced list's old items go whole
    assert {re.match(r"\s*(?:- )?([\w.-]+):", line[2:]).group(1) for line in written} <= set(named)
    new = [line[2:] for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] == "+ "]
    old = [line[2:] for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] == "- "]
    assert set(_comments("\n".join(new))) <= set(_comments(profile.read_text()))  # the profile's own
    assert not set(_comments("\n".join(old))) & set(_comments(after))  # no old value's comment stays
    assert [c for c in _comments(before) if c not in _comments("\n".join(old))] == [
        c for c in _comments(after) if c not in _comments("\n".join(new))]  # every other comment kept
    assert read_params(params) == merged


def test_a_changed_value_loses_the_old_values_comment_and_takes_the_overlays(tmp_path):
    params, overlay = tmp_path / "params.yaml", tmp_path / "overlay.yaml"
    params.write_text("quality:\n  max_saturated_fraction: 0.1   # a tenth of the image burned out\n"
                      "  # the masks:\n  min_mask_coverage: 0.001  # lesion masks\n")
    overlay.write_text("quality:\n  max_saturated_fraction: 0.15  # ControlNet burns out a few\n")
    apply_overlay(params, [overlay], ["quality.min_mask_coverage=0.01"])
    assert params.read_text() == ("quality:\n  max_saturated_fraction: 0.15  # ControlNet burns out a few\n"
                                  "  # the masks:\n  min_mask_coverage: 0.01\n")


def overlay_cli(params: Path, *assignments: str):
    """``controlbreast overlay --set ...`` on ``params``, as a user runs it."""
    sets = [arg for assignment in assignments for arg in ("--set", assignment)]
    return CliRunner().invoke(app, ["overlay", "--params", str(params), *sets])


def test_a_class_no_source_label_matches_is_refused_before_writing(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    before = params.read_text()
    result = overlay_cli(params, "data.classes=[normal, benign, malignent]")
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: data.classes entry 'malignent' matches no label in the phantom (labels found: benign, "
        "malignant, normal)")
    assert params.read_text() == before
    (tmp_path / "set").mkdir()
    (tmp_path / "m.csv").write_text("path,label\na.png,B\nb.png,M\n")
    csv_source = f"data={{source: csv, root: {tmp_path / 'set'}, manifest: {tmp_path / 'm.csv'}}}"
    result = overlay_cli(params, csv_source)
    assert result.exit_code == 2 and re.search(r"entries 'normal', 'benign', 'malignant' match no label in "
                                               r"manifest .*m\.csv \(labels found: B, M\)", result.stderr)
    result = overlay_cli(params, csv_source, "data.classes=[benign, malignant]",
                         "data.label_map={B: benign, M: malignant}")
    assert result.exit_code == 0 and load_config(params).data.label_map == {"B": "benign", "M": "malignant"}


def test_the_training_stages_do_not_share_their_knobs(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    apply_overlay(params, [], ["train_controlnet.steps=1234"])
    config = load_config(params)
    assert config.train_controlnet.steps == 1234
    assert config.train_base.steps == load_config(REPO / "params.yaml").train_base.steps
    assert "&" not in params.read_text() and "<<:" not in params.read_text()


def test_new_keys_are_written_in_the_files_style(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("tune:  # searched\n  n_trials: 0\n  controlnet_scale: null  # off\n")
    apply_overlay(params, [], ["tune.controlnet_scale={low: 1.0, high: 3.0}", "classifier.seeds=[0, 1]"])
    assert params.read_text() == ("tune:  # searched\n  n_trials: 0\n"
                                  "  controlnet_scale: {low: 1.0, high: 3.0}\n"  # "off" no longer holds
                                  "classifier:\n  seeds: [0, 1]\n")


def test_a_change_an_anchor_would_carry_to_another_section_is_refused(tmp_path):
    params = tmp_path / "params.yaml"
    anchored = "train_base: &train\n  steps: 3\ntrain_controlnet:\n  <<: *train\n"
    params.write_text(anchored)
    with pytest.raises(ConfigError, match="anchor"):
        apply_overlay(params, [], ["train_base.steps=9"])
    assert params.read_text() == anchored
    apply_overlay(params, [], ["train_controlnet.steps=9"])  # its own key: the anchor is untouched
    assert load_config(params).train_base.steps == 3 and load_config(params).train_controlnet.steps == 9
