"""Ingest + controls speed, against a plain single-loop OpenCV reference in the same run.

1. BUSI (``--busi``, default ``../shared/datasets/busi``; skipped if absent): images per second of
   our ``ingest`` + ``make_controls`` beside a reference that, for each file in one loop, reads the
   image and its masks with OpenCV, letterboxes to the same size, runs the same Canny and writes
   both PNGs. Prints the ratio (ours / reference; above 1 means we are faster).
2. Phantom scaling: ingest + controls on 1,000 and 16,000 phantom images, each in a fresh process,
   with wall time and peak resident memory; time and memory must grow no worse than linearly.

Run: ``.venv/bin/python benchmarks/ingest.py [--sizes 1000 16000]``.
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

import cv2
import numpy as np

from controlbreast.config import Config, parse_config
from controlbreast.controls.build import make_controls
from controlbreast.controls.edges import canny_edges
from controlbreast.data.ingest import ingest
from controlbreast.data.preprocess import fit_to_square

DEFAULT_BUSI = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "busi"


def config_for(out: Path, **data) -> Config:
    return parse_config({"paths": {"prepared": str(out / "prepared"),
                                   "controls": str(out / "controls"),
                                   "metrics": str(out / "metrics"), "mlruns": str(out / "mlruns")},
                         "data": data, "phantom": {"max_images_per_patient": 1}}, "benchmark")


def ours(config: Config) -> int:
    rows, _ = ingest(config)
    make_controls(config)
    return len(rows)


def reference(root: Path, out: Path, config: Config) -> int:
    """What one would write first: a single loop of OpenCV calls, no processes, no checks."""
    (out / "images").mkdir(parents=True)
    (out / "edges").mkdir()
    count = 0
    for path in sorted(root.glob("*/*.png")):
        if "_mask" in path.stem:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        mask = np.zeros(image.shape, np.uint8)
        for part in path.parent.glob(f"{path.stem}_mask*.png"):
            mask |= cv2.imread(str(part), cv2.IMREAD_GRAYSCALE)
        size = config.data.image_size
        image = fit_to_square(image, size, "pad")
        mask = fit_to_square(mask, size, "pad")
        cv2.imwrite(str(out / "images" / f"{count}.png"), image)
        cv2.imwrite(str(out / "images" / f"{count}_mask.png"), mask)
        cv2.imwrite(str(out / "edges" / f"{count}.png"), canny_edges(image, config.controls))
        count += 1
    return count


def busi_ratio(root: Path, image_size: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        config = config_for(Path(scratch), source="busi", root=str(root), image_size=image_size)
        start = time.perf_counter()
        n_ours = ours(config)
        ours_rate = n_ours / (time.perf_counter() - start)
        start = time.perf_counter()
        n_ref = reference(root, Path(scratch) / "reference", config)
        ref_rate = n_ref / (time.perf_counter() - start)
    print(f"BUSI {n_ours} images at {image_size}px: ours {ours_rate:.0f} img/s, "
          f"plain OpenCV loop {ref_rate:.0f} img/s, ratio {ours_rate / ref_rate:.2f}")


def phantom_once(count: int) -> dict:
    """Ingest + controls of ``count`` phantom images in this process; time and peak memory."""
    with tempfile.TemporaryDirectory() as scratch:
        config = config_for(Path(scratch))
        config = config.model_copy(update={"phantom": config.phantom.model_copy(
            update={"patients_per_class": count // 3})})
        start = time.perf_counter()
        images = ours(config)
        seconds = time.perf_counter() - start
    peak_kib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"images": images, "seconds": seconds, "peak_mib": peak_kib / 1024}


def phantom_scaling(sizes: list[int]) -> None:
    results = []
    for size in sizes:
        output = subprocess.run([sys.executable, __file__, "--phantom-once", str(size)],
                                capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    base = results[0]
    for result in results:
        growth = result["images"] / base["images"]
        print(f"phantom {result['images']:>6} images: {result['seconds']:7.1f} s "
              f"({result['images'] / result['seconds']:.0f} img/s), peak {result['peak_mib']:.0f} MiB "
              f"| x{growth:.0f} images -> x{result['seconds'] / base['seconds']:.1f} time, "
              f"x{result['peak_mib'] / base['peak_mib']:.2f} memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busi", type=Path, default=DEFAULT_BUSI)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 16000])
    parser.add_argument("--phantom-once", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phantom_once:
        print(json.dumps(phantom_once(args.phantom_once)))
        return
    if args.busi.is_dir():
        busi_ratio(args.busi, args.image_size)
    else:
        print(f"BUSI not found at {args.busi}; skipping the ratio")
    phantom_scaling(args.sizes)


if __name__ == "__main__":
    main()
