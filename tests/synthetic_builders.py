"""Inputs for the synthetic-set tests: a prepared 32 px phantom with controls, a tiny real-only
classifier folder, and a synthetic set in the generate stage's layout made of training copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from builders import make_config
from controlbreast.classify.models import ModelCard, create_classifier, save_classifier
from controlbreast.config import Config
from controlbreast.controls.build import make_controls
from controlbreast.data.datasets import load_controls, load_image_set
from controlbreast.data.ingest import ingest
from controlbreast.generation.generate import plan, training_rows, write_set

TINY_RESNET = {"channels": [8, 8, 16, 16], "stem_width": 8}
NO_VARIATION = {"hflip": False, "max_rotation": 0.0, "max_scale": 0.0, "max_shift": 0.0}


def prepared_phantom(root: Path, **sections: dict) -> Config:
    """Ingest a 32 px phantom (6 patients per class, up to 2 views) with Canny controls."""
    paths = {"synthetic": str(root / "synthetic"), "classifiers": str(root / "classifiers"),
             "reports": str(root / "reports")}
    config = make_config(root, data={"image_size": 32}, paths=paths,
                         phantom={"patients_per_class": 6, "max_images_per_patient": 2, "render_size": 64},
                         **sections)
    ingest(config)
    make_controls(config)
    return config


def tiny_judge(config: Config, seed: int = 0, val_auc: float = 0.5) -> Path:
    """A randomly initialised tiny resnet10t saved as ``<classifiers>/real/seed-<seed>``."""
    torch.manual_seed(seed)
    classes = config.data.classes
    model = create_classifier("resnet10t", len(classes), TINY_RESNET)
    card = ModelCard(model="resnet10t", classes=tuple(classes), image_size=config.data.image_size,
                     resize="pad", mean=0.3, std=0.2, model_kwargs=TINY_RESNET, arm="real", seed=seed,
                     val_auc=val_auc)
    folder = Path(config.paths.classifiers) / "real" / f"seed-{seed}"
    save_classifier(folder, model, card)
    return folder


def copies_set(config: Config) -> list[dict]:
    """A synthetic set whose images are exact copies of their control's training image, with the
    unvaried controls: what a generator that memorised its training set would write."""
    planned = plan(config, training_rows(config.paths.prepared))
    rows = [{**row, "model_hash": "memorised-copies"} for row in planned]
    train = load_image_set(config.paths.prepared, config.data.classes, ("train",))
    position = {image_id: i for i, image_id in enumerate(train.ids)}
    images = np.stack([train.images[position[row["control_id"]]] for row in rows])
    controls = load_controls(config.paths.controls, [row["control_id"] for row in rows],
                             config.controls.channels)
    write_set(Path(config.paths.synthetic), rows, images, controls, config.controls.channels)
    return rows
