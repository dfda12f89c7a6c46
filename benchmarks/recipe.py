"""Recipe options, each on its own, measured with the project's own synthetic-image metrics.

Run it in a project after ``dvc repro`` (it reads ``models/base``, ``models/controlnet``,
``models/classifiers/real``, ``data/prepared`` and ``data/controls``; it writes only under
``--scratch``). Each variant is a name and dotted params overrides, e.g.
``lr3e-3:train_controlnet.learning_rate=0.003``. A variant that overrides ``train_controlnet``,
``diffusion`` or ``seed`` retrains the ControlNet on the project's frozen base; one that changes
what the base learns (``train_base``, the noise process or its target, the UNet) retrains the base
first; one that overrides only ``generate`` samples with the project's trained models. Every
variant draws the same ``--images`` training controls, variations and seeds.

Each row: training seconds (base and ControlNet, as retrained); control edge-F1 (matched, and its
ratio against controls shuffled across the set, as ``metrics/synthetic.json``'s
``control_fidelity.edge_f1``); FID against the real training split in the real-only classifier's
features; the fraction of images whose nearest training image's feature cosine is at or above
``synthetic_eval.copy_cosine`` (memorisation); the real-only classifier's recall on the last class
(malignant, by default); and the lesion segmenter's Dice with the source masks and its ratio against
masks shuffled within the class (``lesion_placement``; blank when the project has no segmenter).

Run: ``.venv/bin/python benchmarks/recipe.py [--params params.yaml] [--images 96]
[--variant NAME:key=value,key=value ...] [--scratch /tmp/recipe]``.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from controlbreast.classify.predict import Predictor
from controlbreast.config import Config, parse_config, read_params
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.diffusion.pipeline import train_base, train_controlnet
from controlbreast.evaluation.fidelity import FeatureSpace
from controlbreast.evaluation.memorisation import nearest_cosine
from controlbreast.evaluation.segmenter import Segmenter, dice_against_masks, load_segmenter
from controlbreast.evaluation.synthetic import real_classifier, source_masks
from controlbreast.generation.generate import load_generator, render, set_sampling
from sampler_steps import drawn_rows, quality

RETRAINS = ("train_controlnet", "diffusion", "seed", "train_base")
BASE_KEYS = ("train_base.", "diffusion.prediction_type", "diffusion.zero_terminal_snr",
             "diffusion.beta_schedule", "diffusion.num_train_timesteps", "diffusion.pixel.")


def retrains_base(overrides: dict[str, str]) -> bool:
    """Whether the overrides change what the base model learns (the ControlNet's width does not)."""
    return any(key.startswith(BASE_KEYS) and not key.endswith("control_embedding_channels")
               for key in overrides)


def overridden(raw: dict, overrides: dict[str, str]) -> dict:
    """A deep copy of the params mapping ``raw`` with dotted keys set (values parsed as YAML)."""
    out = copy.deepcopy(raw)
    for dotted, text in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = yaml.safe_load(text)
    return out


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"name:a.b=1,c=[x,y]"`` → (name, {"a.b": "1", "c": "[x,y]"}): a comma starts a new override
    only before ``key=``, so YAML lists pass; ``"name"`` alone overrides nothing."""
    name, _, rest = text.partition(":")
    return name, dict(item.split("=", 1) for item in re.split(r",(?=[\w.]+=)", rest) if item)


def variant_config(raw: dict, overrides: dict[str, str], scratch: Path, project_models: Path) -> Config:
    """The variant's config: a retraining variant writes its models under ``scratch`` (the base a link
    to the project's unless it retrains it too); a sampling-only one reads the project's models."""
    config = parse_config(overridden(raw, overrides), "variant")
    if not any(key.split(".")[0] in RETRAINS for key in overrides):
        return config
    models = scratch / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not retrains_base(overrides):
        (models / "base").symlink_to(project_models.resolve() / "base")
    paths = config.paths.model_copy(update={"models": str(models),
                                            "checkpoints": str(scratch / "checkpoints")})
    return config.model_copy(update={"paths": paths})


def copies(features: torch.Tensor, train: torch.Tensor, threshold: float) -> float:
    """Fraction of synthetic (N, D) features whose nearest training (M, D) cosine, centred on the
    training mean as ``evaluate-synthetic`` measures it, is ≥ ``threshold``."""
    cosine, _ = nearest_cosine(features, train, train.mean(dim=0))
    return float((cosine >= threshold).mean())


def class_recall(predictor: Predictor, images: np.ndarray, labels: np.ndarray, label: int) -> float:
    """The judge's recall on class ``label`` of (N, H, W) images drawn with (N,) intended labels."""
    chosen = predictor.predict_pixels(list(images[labels == label])).argmax(axis=1)
    return float((chosen == label).mean())


def placement(config: Config, segmenter: Segmenter | None, images: np.ndarray, rows: list[dict],
              labels: np.ndarray, train: ImageSet) -> dict:
    """The segmenter's Dice with each image's source mask vs masks shuffled within the class."""
    if segmenter is None:
        return {}
    masks = source_masks(config, train, [(row["control_id"], row["variation"]) for row in rows])
    return dice_against_masks(segmenter.masks(images), masks, labels, config.synthetic_eval.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--variant", nargs="+", default=["baseline"])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/controlbreast-recipe"))
    args = parser.parse_args()
    raw = read_params(args.params)
    project = parse_config(raw, args.params)
    judge = real_classifier(project)
    space, predictor = FeatureSpace.classifier(judge), Predictor.from_folder(judge)
    real = load_image_set(project.paths.prepared, project.data.classes, ("train",))
    train = space(real.images)
    folder = Path(project.paths.models) / "segmenter"
    segmenter = load_segmenter(folder) if folder.is_dir() else None
    last = len(project.data.classes) - 1
    print(f"variant | training s | edge-F1 | F1 ratio | FID | copies | {project.data.classes[last]} recall | "
          "lesion Dice | Dice ratio")
    for name, overrides in map(parse_variant, args.variant):
        scratch = args.scratch / name
        shutil.rmtree(scratch, ignore_errors=True)  # this script's own scratch, never a project's
        config = variant_config(raw, overrides, scratch, Path(project.paths.models))
        seconds = float("nan")
        if config.paths.models != project.paths.models:
            began = time.perf_counter()
            if retrains_base(overrides):
                train_base(config)
            train_controlnet(config)
            seconds = time.perf_counter() - began
        rows, controls = drawn_rows(config, args.images)
        images = render(load_generator(config), rows, controls, set_sampling(config))
        found = quality(images, rows, controls, train, space, config)
        share = copies(space(images), train, config.synthetic_eval.copy_cosine)
        labels = np.array([config.data.classes.index(row["label"]) for row in rows])
        dice = placement(config, segmenter, images, rows, labels, real)
        print(f"{name} | {seconds:.0f} | {found['f1']:.3f} | {found['f1_ratio']:.2f} | {found['fid']:.2f} | "
              f"{share:.3f} | {class_recall(predictor, images, labels, last):.2f} | "
              f"{dice.get('matched', float('nan')):.3f} | {dice.get('ratio', float('nan')):.2f}", flush=True)


if __name__ == "__main__":
    main()
