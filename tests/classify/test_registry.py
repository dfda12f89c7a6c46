"""Candidate and champion aliases on a real SQLite MLflow store."""

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from builders import make_config
from classifier_builders import write_params
from controlbreast.classify.predict import log_pyfunc
from controlbreast.classify.registry import (
    CANDIDATE,
    CHAMPION,
    REGISTERED_NAME,
    RULE,
    promote_if_better,
    register_candidate,
)
from controlbreast.cli import app
from controlbreast.tracking import use_store


def aliases() -> dict[str, str]:
    return {alias: str(version) for alias, version in
            MlflowClient().get_registered_model(REGISTERED_NAME).aliases.items()}


def test_champion_moves_only_to_a_better_candidate_on_the_same_validation_images(trained_classifiers,
                                                                                 tmp_path):
    use_store(make_config(tmp_path))
    folder = Path(trained_classifiers.config.paths.classifiers) / "real" / "seed-0"
    with mlflow.start_run():
        uri = log_pyfunc(folder).model_uri
    ids = ["img-1", "img-2"]

    first = promote_if_better(register_candidate(uri, 0.80, ids, {"arm": "real"}, (0.70, 0.90)))
    assert (first.promoted, first.reason, first.previous_champion) == (True, "no champion yet", None)
    assert aliases() == {CANDIDATE: "1", CHAMPION: "1"}

    worse = promote_if_better(register_candidate(uri, 0.70, list(reversed(ids)), {"arm": "real"}, (0.6, 0.8)))
    assert not worse.promoted and "0.7000 <= champion's 0.8000" in worse.reason
    assert aliases() == {CANDIDATE: "2", CHAMPION: "1"}

    better = promote_if_better(register_candidate(uri, 0.90, ids, {"arm": "synthetic"}, (0.85, 0.95)))
    assert better.promoted and better.previous_champion == "1"
    assert aliases() == {CANDIDATE: "3", CHAMPION: "3"}

    other_images = promote_if_better(register_candidate(uri, 0.60, ["img-9"], {"arm": "real"}, (0.52, 0.7)))
    assert other_images.promoted and "not comparable" in other_images.reason
    chance = promote_if_better(register_candidate(uri, 0.57, ["img-9"], {"arm": "real"}, (0.41, 0.72)))
    assert not chance.promoted and "reaches chance" in chance.reason  # better than the champion, still no
    unknown = promote_if_better(register_candidate(uri, 0.99, ["img-9"], {"arm": "real"}))
    assert not unknown.promoted  # no interval recorded: no evidence of skill
    version = MlflowClient().get_model_version(REGISTERED_NAME, "2")
    assert version.tags["promotion"].startswith("not promoted: validation AUC 0.7000")
    assert version.tags["val_auc"] == "0.700000" and version.tags["arm"] == "real"


def test_the_registry_states_its_rule_and_each_version_what_it_is(trained_classifiers, tmp_path):
    use_store(make_config(tmp_path))
    with mlflow.start_run():
        uri = log_pyfunc(Path(trained_classifiers.config.paths.classifiers) / "real" / "seed-0").model_uri
    promote_if_better(register_candidate(uri, 0.9, ["a", "b"], {"arm": "real", "seed": "0"}, (0.85, 0.95)))
    promote_if_better(register_candidate(uri, 0.8, ["a", "b"], {"arm": "synthetic", "seed": "1"}, (0.7, 0.9)))
    client = MlflowClient()
    assert client.get_registered_model(REGISTERED_NAME).description == RULE
    assert "validation" in RULE and "never choose" in RULE
    first, second = (client.get_model_version(REGISTERED_NAME, v).description for v in ("1", "2"))
    assert first == ("candidate: validation macro AUC 0.9000 [0.850000, 0.950000] on 2 validation images "
                     "(arm real, seed 0)\npromoted to champion: no champion yet")
    assert second.endswith("(arm synthetic, seed 1)\n"
                           "not promoted: validation AUC 0.8000 <= champion's 0.9000")


def test_stage_registers_a_candidate_and_only_promote_moves_the_champion(trained_classifiers, tmp_path):
    config = trained_classifiers.config
    use_store(config)
    client = MlflowClient()
    best = []
    for arm_names in (["real"], ["real+synthetic", "synthetic"]):
        seeds = [s for arm in arm_names for s in json.loads(
            (Path(config.paths.classifiers) / arm / "summary.json").read_text())["seeds"]]
        best.append(max(s["val_auc"] for s in seeds))
    first, second = (client.get_model_version(REGISTERED_NAME, v) for v in ("1", "2"))
    assert float(first.tags["val_auc"]) == pytest.approx(best[0], abs=1e-6)
    assert float(second.tags["val_auc"]) == pytest.approx(best[1], abs=1e-6)
    assert aliases() == {CANDIDATE: "2"}  # training decides nothing
    params = write_params(config, tmp_path / "params.yaml")
    skilled = float(second.tags["val_auc_low"]) > 0.5
    dry = CliRunner().invoke(app, ["promote", "--params", str(params)])
    assert dry.exit_code == 0
    assert ("version 2 would become champion" if skilled else "reaches chance") in dry.output
    assert aliases() == {CANDIDATE: "2"}
    done = CliRunner().invoke(app, ["promote", "--params", str(params), "--yes"])
    assert done.exit_code == 0
    assert aliases() == ({CANDIDATE: "2", CHAMPION: "2"} if skilled else {CANDIDATE: "2"})
    low, auc, high = (float(first.tags[key]) for key in ("val_auc_low", "val_auc", "val_auc_high"))
    assert low <= auc <= high
