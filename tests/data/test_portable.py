"""portable: maths as accurate as NumPy's and OpenCV's, and the phantom's renders and ingest's
files independent of the code paths those libraries pick for the CPU (forced here through their
own switches, in subprocesses)."""

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import yaml

from controlbreast.data import portable
from test_tracking import python_env

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(("name", "values", "tolerance"), [
    ("sin", RNG.uniform(-400, 400, 50_000), 1e-15),
    ("cos", RNG.uniform(-400, 400, 50_000), 1e-15),
    ("tanh", RNG.uniform(-20, 20, 50_000), 1e-15),
    ("exp", RNG.uniform(-700, 700, 50_000), 1e-15),  # relative
    ("log", np.exp(RNG.uniform(-700, 700, 50_000)), 1e-15),
])
def test_functions_agree_with_numpy(name, values, tolerance):
    ours, theirs = getattr(portable, name)(values), getattr(np, name)(values)
    error = np.abs(ours / theirs - 1) if name == "exp" else np.abs(ours - theirs)
    assert error.max() < tolerance
    assert getattr(portable, name)(values.astype(np.float32)).dtype == np.float32


def test_edge_values_and_power_and_products():
    assert np.array_equal(portable.log(np.array([0.0, np.inf])), [-np.inf, np.inf])
    assert np.isnan(portable.log(np.array([-1.0])))[0]
    x = RNG.uniform(0, 5, 1000)
    assert np.abs(portable.power(x, 0.7) / x**0.7 - 1).max() < 1e-14
    assert portable.power(np.array([0.0]), 0.7)[0] == 0.0
    a, b = RNG.standard_normal((30, 12)), RNG.standard_normal((12, 40))
    assert np.abs(portable.matmul(a, b) - a @ b).max() < 1e-13


@pytest.mark.parametrize(("shape", "ksize", "sigma_x", "sigma_y"), [
    ((128, 128, 4), (11, 7), 1.66, 0.9),  # the phantom's speckle PSF
    ((64, 64), (0, 0), 0.7, None),  # identity thumbnails: size from sigma
    ((64, 48), (0, 0), 4.0, None),
    ((32, 40), (1, 9), 0.1, 2.56),  # a column-only blur
])
def test_the_blur_is_opencvs(shape, ksize, sigma_x, sigma_y):
    image = RNG.random(shape, dtype=np.float32)
    ours = portable.gaussian_blur(image, ksize, sigma_x, sigma_y)
    assert ours.dtype == np.float32 and ours.shape == image.shape
    assert np.abs(ours - cv2.GaussianBlur(image, ksize, sigma_x, sigmaY=sigma_y or 0)).max() < 1e-6
    assert np.abs(portable.gaussian_kernel(9, 1.3)[:, None] - cv2.getGaussianKernel(9, 1.3)).max() < 1e-15


INGEST = textwrap.dedent("""
    import hashlib, json, sys
    from pathlib import Path
    import yaml
    from controlbreast.config import parse_config
    from controlbreast.data.discovery import discover
    from controlbreast.data.ingest import run_ingest

    params, out = yaml.safe_load(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    config = parse_config(params)
    run_ingest(config)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    digests = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    renders = {c.source_path: c.load().sha256 for c in discover(config.data, config.phantom)[0]}
    print(json.dumps({**digests, **renders}))
""")


def dispatch_off() -> dict[str, str]:
    """Environment that makes NumPy, OpenCV and OpenBLAS take their baseline code paths (what a
    CPU without AVX2 runs) instead of this machine's AVX2/AVX-512 kernels."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    opencv = [name.strip("*") for name in cv2.getCPUFeaturesLine().split()
              if name.startswith("*")]
    return {"NPY_DISABLE_CPU_FEATURES": ",".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)),
            "OPENCV_CPU_DISABLE": ",".join(opencv), "OPENBLAS_CORETYPE": "Prescott"}


@pytest.mark.parametrize(("modality", "patients"), [("ultrasound", 20), ("mammography", 4)])
def test_ingest_writes_the_same_bytes_whatever_code_paths_the_cpu_offers(tmp_path, modality, patients):
    """Before ``portable``, 3 of these 112 ultrasound renders and most of the films differed."""
    script, hashes = tmp_path / "ingest.py", []
    script.write_text(INGEST)
    for name, extra in (("native", {}), ("baseline", dispatch_off())):
        out = tmp_path / name
        params = {"paths": {"prepared": str(out / "prepared")}, "data": {"workers": 1, "image_size": 64},
                  "phantom": {"patients_per_class": patients, "modality": modality}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
        result = subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.yaml"), str(out)],
                                env={**python_env(), **extra}, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        hashes.append(json.loads(result.stdout.splitlines()[-1]))
    assert len(hashes[0]) > 10 and "prepared/manifest.csv" in hashes[0]
    assert [key for key in hashes[0] if hashes[0][key] != hashes[1][key]] == []  # renders and files
