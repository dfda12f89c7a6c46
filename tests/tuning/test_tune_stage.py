"""The real objective once, on a tiny config: the tune stage end to end (validation only, cached
sets, MLflow trial runs, figures, tune.json), then its values reaching generate and the classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from builders import TINY_PIXEL, TINY_SAMPLING, TINY_TRAIN, make_config
from classifier_builders import TINY_CLASSIFIER, write_params
from controlbreast.cli import app
from controlbreast.config import Config
from controlbreast.controls.build import make_controls
from controlbreast.data.ingest import ingest
from controlbreast.diffusion import pipeline
from controlbreast.errors import MissingInputError
from controlbreast.evaluation.filtering import train_filter
from controlbreast.outputs import read_csv
from controlbreast.stages import filter_synthetic, generate, train_classifier, train_fractions, tune
from controlbreast.tracking import stage_run, tracking_uri
from controlbreast.tuning.objective import Objective, cache_entries, prune_cache
from controlbreast.tuning.study import open_storage, open_study, run_workers, summarise
from controlbreast.tuning.tracking import log_summary, summary_line
from controlbreast.tuning.tuned import apply_tuned, tuned_values
from tuning_builders import STEPS, cheap_worker, tune_config

TUNE = {"n_trials": 3, "per_class": 4, "guidance_scale": {"low": 1.0, "high": 2.0, "step": 1.0},
        "mix_ratio": {"low": 0.05, "high": 0.1, "log": True}, "filter_threshold": {"low": 0.2, "high": 0.6},
        "heartbeat_interval": 1, "grace_period": 5}


def tiny(root: Path) -> Config:
    """14 one-image phantom patients per class at 32 px, tiny diffusion models and classifiers."""
    paths = {name: str(root / name) for name in ("synthetic", "classifiers", "reports", "tune_cache")}
    return make_config(root, data={"image_size": 32}, paths=paths,
                       phantom={"patients_per_class": 14, "max_images_per_patient": 1, "render_size": 64},
                       diffusion={"pixel": TINY_PIXEL}, train_base=TINY_TRAIN, train_controlnet=TINY_TRAIN,
                       sampling=TINY_SAMPLING, generate={"per_class": 4},
                       classifier={**TINY_CLASSIFIER, "registry": False}, synthetic_filter={"epochs": 2},
                       tune={**TUNE, "storage": f"sqlite:///{root / 'optuna' / 'tune.db'}"})


def remove_test_split(config: Config) -> int:
    """Delete every test-split image and control: tuning must not need them."""
    prepared, removed = Path(config.paths.prepared), 0
    for row in read_csv(prepared / "manifest.csv"):
        if row["split"] == "test":
            (prepared / "images" / f"{row['id']}.png").unlink()
            for channel in config.controls.channels:
                (Path(config.paths.controls) / channel / f"{row['id']}.png").unlink()
            removed += 1
    return removed


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    config = tiny(root)
    ingest(config)
    make_controls(config)
    pipeline.train_base(config)
    pipeline.train_controlnet(config)
    train_filter(config)  # tune.filter_threshold scores the trials' sets with it
    assert remove_test_split(config) > 0
    params = write_params(config, root / "params.yaml")
    tune.main(params)
    return config, params


def client(config: Config) -> MlflowClient:
    return MlflowClient(tracking_uri(Path(config.paths.mlruns)))


def runs(config: Config, stage: str) -> list:
    experiment = client(config).get_experiment_by_name(config.tracking.experiment)
    return client(config).search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")


def test_tune_json_holds_the_best_validation_result(tuned):
    config, _ = tuned
    result = json.loads((Path(config.paths.metrics) / "tune.json").read_text())
    assert set(result["best_params"]) == {"guidance_scale", "mix_ratio", "filter_threshold"}
    assert 0.2 <= result["best_params"]["filter_threshold"] <= 0.6
    assert result["best_params"]["guidance_scale"] in (1.0, 2.0)
    assert 0.05 <= result["best_params"]["mix_ratio"] <= 0.1
    assert 0.0 <= result["best_val_auc"] <= 1.0
    assert result["trials"]["complete"] + result["trials"]["pruned"] == 3 == result["trials_this_run"]
    assert result["trials_per_minute"] > 0 and "optimistic" in result["note"]
    assert {"history.png", "landscape.png"} <= set(result["figures"])
    assert all((Path(config.paths.reports) / "tune" / name).is_file() for name in result["figures"])


def test_every_trial_is_a_nested_mlflow_run(tuned):
    config, _ = tuned
    (parent,) = [run for run in runs(config, "tune") if run.info.run_name == "tune"]
    trials = [run for run in runs(config, "tune") if run.info.run_name.startswith("trial-")]
    assert len(trials) == 3
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {parent.info.run_id}
    for run in trials:
        assert {"guidance_scale", "mix_ratio", "synthetic_set"} <= set(run.data.params)
        assert run.data.tags["state"] in ("COMPLETE", "PRUNED") and run.data.metrics["seconds"] > 0
        ran = (run.info.end_time - run.info.start_time) / 1000  # when the trial ran, not when it was logged
        assert ran == pytest.approx(run.data.metrics["seconds"], abs=0.002)
        history = client(config).get_metric_history(run.info.run_id, "val_auc")
        assert [m.step for m in history] == sorted(m.step for m in history) and history
    assert "best.guidance_scale" in parent.data.params and "best_val_auc" in parent.data.metrics
    artifacts = {a.path for a in client(config).list_artifacts(parent.info.run_id, "tune")}
    assert {"tune/history.png", "tune/landscape.png"} <= artifacts


def test_trials_sharing_a_guidance_share_a_cached_set(tuned):
    config, _ = tuned
    trials = [run for run in runs(config, "tune") if run.info.run_name.startswith("trial-")]
    by_guidance = {}
    for run in trials:
        by_guidance.setdefault(run.data.params["guidance_scale"], set()).add(run.data.params["synthetic_set"])
    assert all(len(sets) == 1 for sets in by_guidance.values())
    folders = sorted(p for p in Path(config.paths.tune_cache).iterdir() if p.is_dir())
    assert len(folders) == len(by_guidance)
    for folder in folders:
        rows = read_csv(folder / "manifest.csv")
        assert {row["control_split"] for row in rows} == {"train"} and len(rows) == 12
    entries = cache_entries(config)  # what `controlbreast tune --list-cache` prints
    assert [entry["folder"] for entry in entries] == folders and all(entry["current"] for entry in entries)
    assert prune_cache(config) == []  # only sets of other models are pruned


def test_a_rerun_finds_the_study_complete(tuned, capsys):
    config, params = tuned
    before = json.loads((Path(config.paths.metrics) / "tune.json").read_text())
    tune.main(params)
    after = json.loads((Path(config.paths.metrics) / "tune.json").read_text())
    assert after["trials_this_run"] == 0 and after["best_params"] == before["best_params"]


def test_the_tuned_values_reach_generate_and_the_classifiers(tuned):
    config, params = tuned
    best = json.loads((Path(config.paths.metrics) / "tune.json").read_text())["best_params"]
    generate.main(params)
    (run,) = runs(config, "generate")
    assert float(run.data.params["generate.sampling.guidance_scale"]) == best["guidance_scale"]
    assert float(run.data.params["tuned.guidance_scale"]) == best["guidance_scale"]
    rows = read_csv(Path(config.paths.synthetic) / "manifest.csv")
    assert {float(row["guidance_scale"]) for row in rows} == {best["guidance_scale"]}
    train_classifier.main(params, ["real+synthetic"])
    (run,) = runs(config, "train_classifier")
    assert float(run.data.params["classifier.mix_ratio"]) == pytest.approx(best["mix_ratio"])
    train_fractions.main(params)  # the fraction arms draw at the same ratio as their same-count control
    (run,) = runs(config, "train_fractions")
    assert float(run.data.params["classifier.mix_ratio"]) == pytest.approx(best["mix_ratio"])
    filter_synthetic.main(params)
    (run,) = runs(config, "filter_synthetic")
    assert float(run.data.params["synthetic_filter.threshold"]) == pytest.approx(best["filter_threshold"])
    summary = json.loads((Path(config.paths.metrics) / "synthetic_filter.json").read_text())
    assert summary["threshold"] == pytest.approx(best["filter_threshold"])


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.99])
def test_a_trial_draws_only_what_the_filter_keeps_at_its_threshold(tuned, threshold):
    """The filter's verdicts on the trial's set at the trial's τ decide what it may draw; the ratio
    falls to what the scarcest class kept (0 when a class kept nothing: then only real images)."""
    config, _ = tuned
    objective = Objective.build(config)
    folder = next(p for p in Path(config.paths.tune_cache).iterdir() if p.is_dir() and p.name[0] != ".")
    trial = apply_tuned(config, {"filter_threshold": threshold, "mix_ratio": 0.1})
    scores = {v["id"]: v["probability"] for v in objective.filter_verdicts(folder)}
    assert len(scores) == len(read_csv(folder / "manifest.csv"))
    data = objective.data(trial, folder, seed=0)
    drawn = [i for i in data.train.ids if i in scores]
    assert all(scores[i] >= threshold for i in drawn) and data.synthetic_images == len(drawn)
    if threshold == 0.0:
        assert drawn  # nothing filtered: the trial draws at its mix ratio


def test_tuning_off_keeps_params_and_a_missing_result_is_named(tmp_path):
    config = make_config(tmp_path, tune={"n_trials": 0})
    assert tuned_values(config) == {} and apply_tuned(config, {}).classifier == config.classifier
    with pytest.raises(MissingInputError, match=r"tune\.json: no tuning result"):
        tuned_values(make_config(tmp_path, tune={"n_trials": 3}))


def test_the_cli_names_an_unopenable_storage_in_one_line(tmp_path):
    raw = {"paths": {name: str(tmp_path / name) for name in ("metrics", "mlruns", "prepared", "models")},
           "tune": {"n_trials": 2, "storage": "nosuchdialect://x"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["tune", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1:] == [
        "error: tune.storage: cannot open 'nosuchdialect://x': NoSuchModuleError: Can't load plugin: "
        "sqlalchemy.dialects:nosuchdialect"]


def test_a_mix_ratio_no_set_can_serve_is_refused_before_the_study_exists(tmp_path, small_phantom):
    url = f"sqlite:///{tmp_path / 'optuna' / 'tune.db'}"
    tune = {"n_trials": 2, "per_class": 2, "storage": url, "mix_ratio": {"low": 1, "high": 5}}
    config = make_config(tmp_path, phantom=small_phantom, tune=tune)
    ingest(config)
    params = write_params(config, tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["tune", "--params", str(params)])
    assert result.exit_code == 2 and "tune.mix_ratio.high 5 needs" in result.stderr
    assert not (tmp_path / "optuna" / "tune.db").exists()  # no empty study left behind


def test_a_lost_worker_is_named_in_mlflow_and_in_the_printed_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    fast = {"heartbeat_interval": 1, "grace_period": 2}
    config = tune_config(**fast, n_trials=4)
    open_study(config, open_storage(url, config), "preempted", STEPS)
    lost = run_workers(cheap_worker, (url, "preempted", 4, fast, "die_first"), workers=2)
    summary = {**summarise(optuna.load_study(study_name="preempted", storage=url), 3.0),
               "lost_workers": lost, "figures": []}
    store = make_config(tmp_path)
    with stage_run(store, "tune", ("tune",)) as run:
        log_summary(summary, tmp_path)
    logged = client(store).get_run(run.info.run_id).data
    assert logged.tags["tune.lost_workers"] == lost[0] and logged.metrics["trials_fail"] == 1
    line = summary_line(summary, tmp_path / "tune.json")
    assert f"lost {lost[0]}, the others finished the study" in line and "'fail': 1" in line
