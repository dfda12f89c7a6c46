"""Two processes on the CPU (gloo), launched as a user launches them, against one process in-process.

``accelerate launch --num_processes 2`` on a machine without GPUs needs ``--multi_gpu`` with
``ACCELERATE_USE_CPU=1``: ``accelerate launch --cpu --num_processes 2`` starts ONE process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from mlflow import MlflowClient
from safetensors.torch import load_file

from builders import tiny_config
from classifier_builders import prepare_phantom, write_params
from commands import BIN, digest
from controlbreast.diffusion import pipeline
from controlbreast.diffusion.checkpoints import latest, stored_runs
from controlbreast.distributed import GlobalBatchNorm, global_batch_norm
from controlbreast.errors import ConfigError
from controlbreast.generation.generate import generate_set
from controlbreast.stages import train_classifier
from controlbreast.tracking import tracking_uri
from synthetic_builders import prepared_phantom

WEIGHT_TOLERANCE = 5e-5  # measured: 2.2e-7 (base, 4 steps); classifier, 2 epochs: 4.2e-6 and 1.3e-5
ACCELERATE = ("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "controlbreast")
TORCHRUN = ("torchrun", "--nproc_per_node", "2", "-m", "controlbreast")
GENERATE = {"generate": {"per_class": 3}, "sampling": {"steps": 2, "batch_size": 2},
            "quality": {"min_std": 0.0, "max_black_fraction": 1.0, "max_saturated_fraction": 1.0}}


def start(launcher: tuple[str, ...], *arguments: str, cwd: Path) -> subprocess.Popen:
    """Two processes of ``controlbreast <arguments>`` on the CPU, as a user's shell starts them."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([*launcher, *arguments], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, expect: int = 0) -> str:
    """stderr of ``process``, asserting its exit status."""
    out, err = process.communicate(timeout=300)
    assert (process.returncode == 0) == (expect == 0), f"{out[-3000:]}\n{err[-3000:]}"
    return err


def params(config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def max_difference(first: Path, second: Path) -> float:
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def stage_runs(config) -> list:
    client = MlflowClient(tracking_uri(config.paths.mlruns))
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_phantom(tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="module")
def one_process(prepared, tmp_path_factory):
    """Base (4 steps) and ControlNet (4 steps) trained in this process: the reference."""
    config = tiny_config(tmp_path_factory.mktemp("one"), prepared, **GENERATE)
    began = time.perf_counter()
    pipeline.train_base(config)
    print(f"one process: train_base {time.perf_counter() - began:.1f} s")
    pipeline.train_controlnet(config)
    return config


def test_global_batch_norm_keeps_the_parameters_and_refuses_fused_norms():
    from timm.layers import BatchNormAct2d

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    weight = model[1].weight
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # made before the swap
    global_batch_norm(model)
    assert isinstance(model[1], GlobalBatchNorm) and model[1].weight is weight
    assert any(p is weight for group in optimizer.param_groups for p in group["params"])
    with pytest.raises(ConfigError, match="BatchNormAct2d layers cannot share batch statistics"):
        global_batch_norm(torch.nn.Sequential(BatchNormAct2d(4)))


@pytest.mark.slow
def test_two_processes_train_the_base_model_one_process_trains(prepared, one_process, tmp_path):
    config = tiny_config(tmp_path, prepared)
    began = time.perf_counter()
    finish(start(ACCELERATE, "train-base", "-p", str(params(config, tmp_path / "params.yaml")), cwd=tmp_path))
    print(f"two processes: train_base launch {time.perf_counter() - began:.1f} s")
    weights = "base/unet/diffusion_pytorch_model.safetensors"
    difference = max_difference(one_process.paths.models / weights, config.paths.models / weights)
    print(f"train_base: max abs weight difference, 2 vs 1 processes: {difference:.3g}")
    assert difference < WEIGHT_TOLERANCE
    [run] = stage_runs(config)  # one process logged
    assert run.data.metrics["final_processes"] == 2 and run.info.status == "FINISHED"
    [stored] = stored_runs(config.paths.checkpoints)
    assert {p.name for p in latest(stored.folder).folder.glob("random_states_*")} == {"random_states_0.pkl"}


def rank_process(launcher: psutil.Process, rank: int) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "controlbreast" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def kill_rank_after_checkpoint(process: subprocess.Popen, folder: Path, rank: int) -> None:
    """SIGKILL ``rank`` of the launch once a checkpoint exists under ``folder``."""
    launcher = psutil.Process(process.pid)
    deadline = time.monotonic() + 240
    while not list(folder.glob("*/checkpoint-*/state.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the launch ended before a checkpoint"
        time.sleep(0.1)
    rank_process(launcher, rank).send_signal(signal.SIGKILL)


def linked_base(config, reference):
    """``config`` with ``reference``'s trained base model linked into its models folder."""
    Path(config.paths.models).mkdir(parents=True)
    (Path(config.paths.models) / "base").symlink_to(Path(reference.paths.models) / "base")
    return config


@pytest.mark.slow
def test_a_killed_rank_fails_in_one_line_and_two_processes_resume_where_it_stopped(prepared, one_process,
                                                                                     tmp_path):
    endless = {"steps": 100_000, "checkpoint_every": 2, "validate_every": 100_000}
    killed = linked_base(tiny_config(tmp_path, prepared, train_controlnet=endless), one_process)
    launch = start(ACCELERATE, "train-controlnet", "-p", str(params(killed, tmp_path / "params.yaml")),
                   cwd=tmp_path)
    kill_rank_after_checkpoint(launch, killed.paths.checkpoints / "train_controlnet", rank=1)
    err = finish(launch, expect=1)
    assert err.count("error: ") == 1 and "[rank0]: Traceback" not in err  # the launcher's own report aside
    assert ("\nerror: train_controlnet: process 0 of 2 stopped because another process of the launch ended "
            "(killed or failed: see its output); nothing was written, the last checkpoint is kept (run "
            "again with --resume)") in err
    assert sorted(p.name for p in Path(killed.paths.models).iterdir()) == ["base"]  # no partial output
    assert [run.info.status for run in stage_runs(killed)] == ["FAILED"]

    [stored] = stored_runs(killed.paths.checkpoints)
    step = latest(stored.folder).step
    resumed = killed.model_copy(update={"train_controlnet": killed.train_controlnet.model_copy(
        update={"steps": step + 2})})
    finish(start(ACCELERATE, "train-controlnet", "--resume", "-p",
                 str(params(resumed, tmp_path / "resumed.yaml")), cwd=tmp_path))
    straight = linked_base(tiny_config(tmp_path / "straight", prepared,
                                       train_controlnet={**endless, "steps": step + 2}), one_process)
    assert pipeline.train_controlnet(straight)["resumed_from"] == 0
    weights = "controlnet/diffusion_pytorch_model.safetensors"
    difference = max_difference(straight.paths.models / weights, killed.paths.models / weights)
    print(f"train_controlnet: resumed at step {step} of {step + 2} in 2 processes vs straight in 1: "
          f"{difference:.3g}")
    assert difference < WEIGHT_TOLERANCE
    assert [r.data.metrics.get("final_resumed_from") for r in stage_runs(killed)
            if r.info.status == "FINISHED"] == [step]


@pytest.mark.slow
def test_two_processes_train_the_classifier_one_process_trains(tmp_path):
    config = prepare_phantom(tmp_path / "data")
    config = config.model_copy(update={"classifier": config.classifier.model_copy(
        update={"seeds": (0,), "epochs": 2, "registry": False})})
    alone = config.model_copy(update={"paths": config.paths.model_copy(
        update={"classifiers": tmp_path / "one", "mlruns": tmp_path / "one-mlruns"})})
    began = time.perf_counter()
    train_classifier.main(write_params(alone, tmp_path / "alone.yaml"), ["real"])
    print(f"one process: classifier {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    finish(start(ACCELERATE, "train-classifier", "-p", str(write_params(config, tmp_path / "params.yaml")),
                 cwd=tmp_path))
    print(f"two processes: train-classifier launch {time.perf_counter() - began:.1f} s")
    weights = "real/seed-0/model.safetensors"
    difference = max_difference(tmp_path / "one" / weights, config.paths.classifiers / weights)
    print(f"classifier: max abs weight difference, 2 vs 1 processes: {difference:.3g}")
    assert difference < WEIGHT_TOLERANCE
    assert [run.data.tags.get("mlflow.runName") for run in stage_runs(config)
            if "mlflow.parentRunId" not in run.data.tags] == ["train_classifier"]


@pytest.mark.slow
def test_torchrun_generates_the_set_one_process_generates_byte_for_byte(one_process, tmp_path):
    torch.set_num_threads(1)  # as torchrun sets each process (OMP_NUM_THREADS=1): the bytes depend on it
    alone = generate_set(one_process, progress=False)
    assert alone["assembled"]
    config = one_process.model_copy(update={"paths": one_process.paths.model_copy(
        update={"synthetic": tmp_path / "synthetic", "mlruns": tmp_path / "mlruns"})})
    err = finish(start(TORCHRUN, "generate", "-p", str(params(config, tmp_path / "params.yaml")),
                       cwd=tmp_path))
    assert digest(config.paths.synthetic) == digest(one_process.paths.synthetic), err[-2000:]
    assert not list(tmp_path.glob(".synthetic.parts-*"))  # staging removed by whoever assembled
