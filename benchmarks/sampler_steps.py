"""Sampler and step count against quality, on the trained default model: the FID-vs-steps table
that decides ``generate.sampling``, and the speed-up over the reference loop at equal quality.

Run it in a project after ``dvc repro`` (it reads ``models/base``, ``models/controlnet``, the
real-only classifier ``models/classifiers/real`` as the feature space, ``data/prepared`` and
``data/controls``; nothing is written). The same ``--images`` training-split controls, variations
and seeds are drawn with every setting, so the rows differ by the sampler alone:

- ``reference``: the diffusers-pipeline-style loop of ``benchmarks/sample.py`` at the baseline
  setting (``--baseline``, default DDIM 20 steps: the default generate before this table);
- ``ours``: the project's loop (``render``, as ``generate`` runs it) at each ``--settings`` entry.

Each row: images/s (best of ``--rounds``; who runs first alternates), FID against the real training
split in the real-only classifier's feature space (as ``evaluate-synthetic`` measures realism), its
change against the reference's FID, and the control edge-F1 ratio against shuffled controls. The
speed ratio is ours over the reference; a setting qualifies when its FID is within ``--tolerance``
(default 5%) of the reference's.

Run: ``.venv/bin/python benchmarks/sampler_steps.py [--params params.yaml] [--images 160]
[--guidance 1] [--settings ddim:20 ddim:10 unipc:10 dpmsolver++:10 unipc:8] [--threads 0]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from controlbreast.config import Config, load_config
from controlbreast.data.datasets import load_image_set
from controlbreast.diffusion.config import SamplingConfig
from controlbreast.diffusion.data import to_uint8, to_unit
from controlbreast.evaluation.fidelity import FeatureSpace, frechet_distance
from controlbreast.evaluation.synthetic import control_fidelity, real_classifier
from controlbreast.generation.generate import (
    Generator,
    load_generator,
    plan,
    render,
    training_rows,
    varied_controls,
)
from sample import Setup, reference


def parse_setting(text: str, guidance: float, batch_size: int) -> SamplingConfig:
    """``"unipc:10"`` → that sampler at ``guidance``."""
    scheduler, steps = text.split(":")
    return SamplingConfig(scheduler=scheduler, steps=int(steps), guidance_scale=guidance,
                          batch_size=batch_size)


def drawn_rows(config: Config, images: int) -> tuple[list[dict], np.ndarray]:
    """The first ``images`` rows of the generation plan, spread over the classes, and their varied
    controls (N, C, H, W) uint8."""
    rows = plan(config, training_rows(config.paths.prepared))
    step = max(1, len(rows) // images)
    rows = rows[::step][:images]
    return rows, varied_controls(config.paths.controls, rows, config.controls.channels)


def reference_images(generator: Generator, rows: list[dict], controls: np.ndarray,
                     sampling: SamplingConfig) -> np.ndarray:
    """(N, H, W) uint8 from the reference loop (pixel back end: the sample is the image)."""
    classes = generator.backend.classes
    denoiser = generator.denoiser
    setup = Setup(denoiser.unet, denoiser.controlnet, denoiser.class_embedding, generator.backend.scheduler,
                  torch.tensor([classes.index(row["label"]) for row in rows]),
                  [int(row["seed"]) for row in rows], to_unit(controls), sampling)
    return to_uint8(reference(setup))


def timed(draw) -> tuple[float, np.ndarray]:
    began = time.perf_counter()
    images = draw()
    return time.perf_counter() - began, images


def quality(images: np.ndarray, rows: list[dict], controls: np.ndarray, real: torch.Tensor,
            space: FeatureSpace, config: Config) -> dict[str, float]:
    """FID against the real training features and the control edge-F1 ratio of (N, H, W) images."""
    labels = np.array([config.data.classes.index(row["label"]) for row in rows])
    f1 = control_fidelity(images, controls, labels, config)["edge_f1"]
    return {"fid": frechet_distance(space(images), real), "f1_ratio": f1["ratio"], "f1": f1["matched"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--baseline", default="ddim:20")
    parser.add_argument("--settings", nargs="+",
                        default=["ddim:20", "ddim:10", "unipc:10", "dpmsolver++:10", "unipc:8", "unipc:6"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.params)
    generator = load_generator(config)
    rows, controls = drawn_rows(config, args.images)
    batch = (config.generate.sampling or config.sampling).batch_size
    space = FeatureSpace.classifier(real_classifier(config))
    train = load_image_set(config.paths.prepared, config.data.classes, ("train",))
    real = space(train.images)
    print(f"trained model {generator.model_hash}, {len(rows)} images from training controls, guidance "
          f"{args.guidance:g}, {torch.get_num_threads()} threads; FID vs {len(train.images)} real training "
          f"images in the real-only classifier's features")
    base = parse_setting(args.baseline, args.guidance, batch)
    draws = {("reference", args.baseline): lambda: reference_images(generator, rows, controls, base)}
    for text in args.settings:
        sampling = parse_setting(text, args.guidance, batch)
        draws[("ours", text)] = lambda sampling=sampling: render(generator, rows, controls, sampling)
    seconds, images = {key: [] for key in draws}, {}
    for round_ in range(args.rounds):
        for key in (list(draws) if round_ % 2 == 0 else list(draws)[::-1]):
            spent, images[key] = timed(draws[key])
            seconds[key].append(spent)
    results = {key: {"rate": len(rows) / min(seconds[key]),
                     **quality(images[key], rows, controls, real, space, config)} for key in draws}
    ref = results[("reference", args.baseline)]
    print("loop      | sampler:steps  | images/s | speed vs reference | FID   | FID vs reference | "
          "edge-F1 ratio | equal FID")
    for (loop, text), found in results.items():
        change = found["fid"] / ref["fid"] - 1
        print(f"{loop:9s} | {text:14s} | {found['rate']:8.2f} | {found['rate'] / ref['rate']:17.2f}x | "
              f"{found['fid']:5.2f} | {change:+15.1%} | {found['f1_ratio']:13.2f} | "
              f"{'yes' if abs(change) <= args.tolerance else 'no'}")


if __name__ == "__main__":
    main()
