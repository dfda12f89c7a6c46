import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controlbreast.cli import app

runner = CliRunner()

CLI = [str(Path(sys.executable).parent / "controlbreast")]


@pytest.mark.parametrize("stage", ["ingest", "controls", "train-classifier", "evaluate", "predict",
                                   "generate", "evaluate-synthetic", "tune"])
def test_every_stage_has_help(stage):
    result = CliRunner().invoke(app, [stage, "--help"])
    assert result.exit_code == 0 and "--params" in result.output


def test_bad_params_exit_2_with_the_key_and_no_traceback(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"image_size": 64, "sorce": "busi"}}))
    result = subprocess.run([*CLI, "ingest", "--params", str(params)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{params}: invalid parameters" in result.stderr and "data.sorce: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_bad_data_exits_1_naming_the_file(tmp_path):
    for label in ("benign", "malignant"):  # every class of data.classes has a folder, one image a split
        root = tmp_path / "busi" / label
        root.mkdir(parents=True)
        for k in (1, 2, 3):
            (root / f"{label} ({k}).png").write_bytes(b"\x89PNG broken")
            (root / f"{label} ({k})_mask.png").write_bytes(b"\x89PNG broken")
    params = tmp_path / "params.yaml"  # quotas that 6 images meet, so the preflight check passes
    params.write_text(yaml.safe_dump({"data": {"source": "busi", "root": str(tmp_path / "busi"),
                                               "classes": ["benign", "malignant"]},
                                      "tune": {"n_trials": 0}, "classifier": {"real_fractions": [1.0]},
                                      "paths": {"mlruns": str(tmp_path / "mlruns")}}))
    result = subprocess.run([*CLI, "ingest", "--params", str(params)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert "benign/benign (1).png: not a readable image" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_external_csv_set_without_root_is_one_line_naming_the_set_and_key(tmp_path):
    (tmp_path / "bus.csv").write_text("path,label\na.png,benign\n")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": {"external": [
        {"name": "bus-bra", "source": "csv", "manifest": str(tmp_path / "bus.csv")}]}}))
    result = runner.invoke(app, ["ingest-external", "--params", str(params)])
    assert result.exit_code == 2 and "Traceback" not in result.output  # a ConfigError, not a TypeError
    assert "evaluate.external.0: external set 'bus-bra' (source csv) lacks root" in result.output
    assert not (tmp_path / "data").exists() and not Path("data/external/bus-bra").exists()


def test_checkpoints_are_listed_and_pruned_only_when_asked(tmp_path):
    root = tmp_path / "models" / "checkpoints"
    for stage, fingerprint in (("train_base", "aaaa"), ("train_base", "bbbb"), ("train_controlnet", "cccc")):
        state = root / stage / fingerprint / "checkpoint-000002"
        state.mkdir(parents=True)
        (state / "state.json").write_text('{"step": 2, "loss_mean": 0.1}')
    params = tmp_path / "params.yaml"
    params.write_text(f"paths: {{checkpoints: {root}}}\n")
    listed = runner.invoke(app, ["checkpoints", "list", "--params", str(params)])
    assert listed.exit_code == 0 and all(f in listed.output for f in ("aaaa", "bbbb", "cccc"))
    dry = runner.invoke(app, ["checkpoints", "prune", "--params", str(params), "--fingerprint", "aaaa"])
    assert dry.exit_code == 0 and "would remove" in dry.output and (root / "train_base" / "aaaa").is_dir()
    prune = ["checkpoints", "prune", "--params", str(params)]
    done = runner.invoke(app, [*prune, "--fingerprint", "aaaa", "--yes"])
    assert done.exit_code == 0 and not (root / "train_base" / "aaaa").exists()
    assert (root / "train_base" / "bbbb").is_dir() and (root / "train_controlnet" / "cccc").is_dir()
    unknown = runner.invoke(app, ["checkpoints", "prune", "--params", str(params), "--fingerprint", "zzzz"])
    assert unknown.exit_code == 1 and "no checkpoints with fingerprint ['zzzz']" in unknown.output
