"""The classifier's data at scale: load time and peak traced memory of the ``real+synthetic`` arm's
data (``classify/data.py: load_training_data``) beside a reference that decodes the whole synthetic
set and then draws from it (the loader before this benchmark), at growing synthetic set sizes; with
``--epoch``, one training epoch of the arm too.

The synthetic sets are mirrored copies of the prepared training images (a 64 px phantom from
``params.yaml``), written in the generate stage's layout; nothing is generated. Two mixes: the
default ``classifier.mix_ratio`` (the arm draws as many synthetic images as there are real ones) and
a ratio that draws the whole set (what a 16,000-image set is made for).

Run: ``.venv/bin/python benchmarks/classifier_data.py [--sizes 1000 4000 16000] [--epoch]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from controlbreast.classify.data import concatenate, load_training_data
from controlbreast.config import Config, load_config, parse_config
from controlbreast.data.datasets import load_image_set
from controlbreast.data.imageio import encode_png
from controlbreast.data.ingest import ingest
from controlbreast.data.manifest import SyntheticRow, manifest_bytes

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def base_config(root: Path) -> Config:
    raw = load_config(PARAMS).model_dump(mode="json")
    raw["paths"] = {**raw["paths"], **{name: str(root / name) for name in (
        "prepared", "controls", "models", "synthetic", "metrics", "reports", "checkpoints", "classifiers",
        "mlruns")}}
    raw["phantom"] = {**raw["phantom"], "patients_per_class": 20}
    raw["data"] = {**raw["data"], "workers": 1}
    raw["classifier"] = {**raw["classifier"], "epochs": 1, "seeds": [0]}
    return parse_config(raw, "classifier-data")


def write_copies(config: Config, folder: Path, count: int) -> Path:
    """``count`` mirrored training images as a synthetic set (images/ and manifest.csv)."""
    train = load_image_set(config.paths.prepared, config.data.classes, ("train",))
    (folder / "images").mkdir(parents=True)
    rows = []
    for n in range(count):
        k = n % len(train)
        name = f"syn-{n:06d}"
        (folder / "images" / f"{name}.png").write_bytes(encode_png(np.fliplr(train.images[k]).copy()))
        rows.append({"id": name, "label": config.data.classes[train.labels[k]], "control_id": train.ids[k],
                     "control_split": "train", "seed": n, "variation": "{}", "guidance_scale": 1.0,
                     "controlnet_scale": 1.0, "steps": 1, "scheduler": "ddim", "model_hash": "copies"})
    (folder / "manifest.csv").write_bytes(manifest_bytes(rows, SyntheticRow))
    return folder


def reference(config: Config, seed: int) -> int:
    """The former loader: decode every synthetic PNG, then draw; returns images kept."""
    real = load_image_set(config.paths.prepared, config.data.classes, ("train", "val"))
    train = real.split("train")
    synthetic = load_image_set(config.paths.synthetic, config.data.classes, schema=SyntheticRow)
    count = round(config.classifier.mix_ratio * len(train))
    chosen = np.sort(np.random.default_rng(seed).choice(len(synthetic), size=count, replace=False))
    return len(concatenate(train, synthetic.subset(chosen)))


def ours(config: Config, seed: int) -> int:
    return len(load_training_data(config, "real+synthetic", seed).train)


def traced(loop, config: Config) -> tuple[float, float, int]:
    """Seconds, peak traced MiB (numpy arrays included) and images of one call of ``loop``."""
    tracemalloc.start()
    began = time.perf_counter()
    images = loop(config, 0)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, images


def epoch_seconds(config: Config) -> float:
    from controlbreast.classify.train import train_classifier

    began = time.perf_counter()
    train_classifier(config, "real+synthetic", 0)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--epoch", action="store_true", help="also time one epoch of the arm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = base_config(root)
        ingest(config)
        n_real = len(load_image_set(config.paths.prepared, config.data.classes, ("train",)))
        print(f"{n_real} real training images at {config.data.image_size} px")
        print(f"{'set':>6} {'mix':>6} {'drawn':>6} {'ref s':>7} {'ours s':>7} {'ratio':>6} "
              f"{'ref MiB':>8} {'ours MiB':>9}" + (f" {'epoch s':>8}" if args.epoch else ""))
        for size in args.sizes:
            folder = write_copies(config, root / f"synthetic-{size}", size)
            for mix in (config.classifier.mix_ratio, size / n_real):
                run = config.model_copy(update={
                    "paths": config.paths.model_copy(update={"synthetic": folder}),
                    "classifier": config.classifier.model_copy(update={"mix_ratio": mix})})
                ref_s, ref_mb, _ = traced(reference, run)
                our_s, our_mb, images = traced(ours, run)
                epoch = f" {epoch_seconds(run):8.1f}" if args.epoch else ""
                print(f"{size:6d} {mix:6.2f} {images - n_real:6d} {ref_s:7.2f} {our_s:7.2f} "
                      f"{ref_s / our_s:6.2f} {ref_mb:8.1f} {our_mb:9.1f}{epoch}", flush=True)


if __name__ == "__main__":
    main()
