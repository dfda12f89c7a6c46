"""scripts/gpu-check.sh on a machine without a GPU: it stops at once, saying why; its pipeline smoke
is the GPU profile (bf16, its models and batches) on the phantom with tiny step counts."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from controlbreast.config import load_config
from controlbreast.overlay import apply_overlay
from test_tracking import python_env

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run, not stop")
def test_without_a_gpu_the_check_stops_at_once_saying_why():
    began = time.monotonic()
    result = subprocess.run([str(REPO / "scripts" / "gpu-check.sh")], capture_output=True, text=True,
                            env={**python_env(), "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "gpu-check: no CUDA GPU visible to torch" in result.stderr and "--dry-run" in result.stderr
    assert time.monotonic() - began < 60  # one torch import, nothing measured


def test_the_smoke_is_the_gpu_profile_on_the_phantom_with_few_steps(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    apply_overlay(params, [REPO / "profiles" / "busi-gpu.yaml", REPO / "ci" / "gpu-smoke.yaml"], [])
    config = load_config(params)
    assert config.data.source == "phantom" and config.data.image_size == 128 and config.tune.n_trials == 0
    for stage in (config.train_base, config.train_controlnet):
        assert stage.mixed_precision == "bf16" and stage.batch_size == 32 and stage.steps <= 20
    assert config.diffusion.pixel.block_out_channels == (32, 64, 128, 256)
