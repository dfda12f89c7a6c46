"""Sharded, streaming, resumable generation (``generation/staging.py``): shards and a killed run end
with the bytes of one uninterrupted run; a finished chunk is never drawn again; stale staging is
listed, not deleted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import tiny_config
from classifier_builders import write_params
from controlbreast.diffusion import pipeline
from controlbreast.errors import ConfigError
from controlbreast.generation.generate import generate_set
from controlbreast.generation.staging import Shard
from synthetic_builders import prepared_phantom

LENIENT = {"min_std": 0.0, "max_black_fraction": 1.0, "max_saturated_fraction": 1.0}
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny base and ControlNet; sets of 4 images per class drawn in chunks of 2 (6 chunks)."""
    root = tmp_path_factory.mktemp("staging")
    prepared = prepared_phantom(root / "prepared")
    config = tiny_config(root, prepared, generate={"per_class": 4, "sampling": {
        "steps": 12, "batch_size": 2, "guidance_scale": 2.0}}, quality=LENIENT)
    pipeline.train_base(config)
    pipeline.train_controlnet(config)
    return config


def with_destination(config, folder: Path):
    return config.model_copy(update={"paths": config.paths.model_copy(update={"synthetic": folder})})


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(trained, tmp_path_factory):
    config = with_destination(trained, tmp_path_factory.mktemp("whole") / "synthetic")
    summary = generate_set(config, progress=False)
    assert summary["assembled"] and summary["chunks"] == 6 and summary["chunks_drawn"] == list(range(6))
    return files(Path(config.paths.synthetic))


def test_two_shards_equal_one_run_byte_for_byte(trained, uninterrupted, tmp_path):
    config = with_destination(trained, tmp_path / "synthetic")
    first = generate_set(config, progress=False, shard=Shard.parse("0/2"))
    assert first["chunks_drawn"] == [0, 2, 4] and not first["assembled"]
    assert not (tmp_path / "synthetic").exists()  # nothing swapped in before every shard is done
    second = generate_set(config, progress=False, shard=Shard.parse("1/2"))
    assert second["chunks_drawn"] == [1, 3, 5] and second["assembled"]
    assert files(tmp_path / "synthetic") == uninterrupted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]  # staging removed


def test_a_run_killed_after_its_first_chunk_resumes_to_the_same_bytes(trained, uninterrupted, tmp_path):
    config = with_destination(trained, tmp_path / "synthetic")
    params = write_params(config, tmp_path / "params.yaml")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    child = subprocess.Popen([sys.executable, "-m", "controlbreast", "generate", "--params", str(params)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".synthetic.parts-*/chunk-000000/manifest.csv")):
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = sorted(tmp_path.glob(".synthetic.parts-*/chunk-*/images/*.png"))
    assert finished and not (tmp_path / "synthetic").exists()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished}
    done = {int(p.parts[-3].split("-")[1]) for p in finished}
    assert len(done) < 6  # killed mid-way, not after the end

    summary = generate_set(config, progress=False)
    assert summary["assembled"] and not done & set(summary["chunks_drawn"])
    assert set(summary["chunks_drawn"]) | done == set(range(6))
    assert files(tmp_path / "synthetic") == uninterrupted
    after = {name: (p.stat().st_ino, p.stat().st_mtime_ns)  # the same files, linked, not redrawn
             for name in before for p in [tmp_path / "synthetic" / "images" / name]}
    assert after == before


def test_staging_of_another_plan_is_listed_and_kept(trained, uninterrupted, tmp_path, capsys):
    config = with_destination(trained, tmp_path / "synthetic")
    other = tmp_path / ".synthetic.parts-0123456789abcdef"
    (other / "chunk-000000").mkdir(parents=True)
    (other / "chunk-000000" / "manifest.csv").write_text("id\n")
    generate_set(config, progress=False)
    message = capsys.readouterr().err
    assert str(other) in message and "1 finished chunk" in message and f"rm -rf {other}" in message
    assert other.is_dir() and files(tmp_path / "synthetic") == uninterrupted


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "0/0", "-1/3"])
def test_a_bad_shard_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--shard"):
        Shard.parse(text)


@pytest.mark.parametrize(("environment", "expected"), [
    ({"RANK": "1", "WORLD_SIZE": "3"}, Shard(1, 3)),  # accelerate launch / torchrun, one process per GPU
    ({"WORLD_SIZE": "1"}, Shard()),
    ({}, Shard()),
])
def test_a_launched_process_draws_its_rank_shard(monkeypatch, environment, expected):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Shard.from_environment() == expected
