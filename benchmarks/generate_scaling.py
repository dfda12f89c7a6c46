"""Generation at scale: time and peak memory of ``generate_set`` at growing set sizes, each size in
a fresh process (peak RSS never goes down within one). Linear time and flat memory are the goal:
images are drawn and written one chunk (one sampling batch) at a time.

The models are the default pixel config of ``params.yaml`` at random initialisation (speed and
memory do not depend on the weights; nothing is trained), conditioned on Canny controls of a small
ingested phantom at ``data.image_size``. ``--steps`` defaults to 4 DDIM steps so that the table fits
a few minutes on 2 CPU cores: the cost per image is linear in steps, the scaling is what is measured.

Run: ``.venv/bin/python benchmarks/generate_scaling.py [--sizes 500 1000 2000 4000] [--steps 4]
[--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from controlbreast.config import Config, load_config, parse_config
from controlbreast.controls.build import make_controls
from controlbreast.data.ingest import ingest
from controlbreast.diffusion.backends import new_backend, save_base
from controlbreast.diffusion.pipeline import new_controlnet
from controlbreast.generation.generate import generate_set

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def scaling_config(root: Path, images: int, steps: int) -> Config:
    """params.yaml with outputs under ``root``, a 20-patient-per-class phantom and ``images`` images."""
    raw = load_config(PARAMS).model_dump(mode="json")
    raw["paths"] = {**raw["paths"], **{name: str(root / name) for name in (
        "prepared", "controls", "models", "synthetic", "metrics", "reports", "checkpoints")}}
    raw["phantom"] = {**raw["phantom"], "patients_per_class": 20}
    raw["data"] = {**raw["data"], "workers": 1}
    sampling = {**(raw["generate"]["sampling"] or raw["sampling"]), "steps": steps}
    raw["generate"] = {**raw["generate"], "per_class": -(-images // 3), "sampling": sampling}
    return parse_config(raw, "scaling")


def prepare(root: Path, steps: int) -> None:
    """Prepared phantom, its controls, and random-init base and ControlNet folders under ``root``."""
    config = scaling_config(root, 3, steps)
    ingest(config)
    make_controls(config)
    torch.manual_seed(0)
    backend = new_backend(config)
    save_base(backend, root / "models" / "base")
    new_controlnet(config, backend).save_pretrained(root / "models" / "controlnet")
    (root / "models" / "controlnet" / "control.json").write_text(
        json.dumps({"channels": list(config.controls.channels)}))


def run_one(root: Path, images: int, steps: int, threads: int) -> None:
    """Child process: one set of ``images``; prints a JSON line of seconds and peak RSS."""
    if threads:
        torch.set_num_threads(threads)
    began = time.perf_counter()
    summary = generate_set(scaling_config(root, images, steps), progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": summary["images"], "seconds": time.perf_counter() - began,
                      "sampling_seconds": summary["sampling_seconds"], "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_one(args.child, args.sizes[0], args.steps, args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        prepare(root, args.steps)
        threads = args.threads or "default"
        print(f"default pixel model (random init), {args.steps} DDIM steps, threads {threads}")
        print(f"{'images':>7} {'seconds':>8} {'s/image':>8} {'peak MiB':>9}")
        for size in args.sizes:
            child = subprocess.run([sys.executable, __file__, "--child", str(root), "--sizes", str(size),
                                    "--steps", str(args.steps), "--threads", str(args.threads)],
                                   capture_output=True, text=True)
            if child.returncode:
                raise SystemExit(f"{size} images: the child process failed:\n{child.stderr[-3000:]}")
            row = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"{row['images']:7d} {row['seconds']:8.1f} {row['seconds'] / row['images']:8.4f} "
                  f"{row['peak_mb']:9.0f}", flush=True)


if __name__ == "__main__":
    main()
