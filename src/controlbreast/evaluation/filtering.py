"""Label-consistency filtering of the synthetic set (HistoDiffusion, DreamDA): keep an image only if a
classifier of the real training split alone gives its intended class probability >= τ, and it is not
a likely copy of a training image.

The filter's classifier must not be the ``real`` arm's: that one kept the epoch with the best
*validation* AUC, so filtering with it would let validation images choose training data. This one
trains on the training split for a fixed ``synthetic_filter.epochs`` and never sees a validation or
test image. Copies are judged in its own features (centred cosine, as ``evaluate-synthetic``) and by
SSIM, with ``synthetic_eval``'s thresholds.

Outputs: ``<paths.models>/filter/`` (the classifier) and ``<paths.synthetic_filter>/verdicts.csv``
(``FilterRow``: one verdict per synthetic image, in the set's order).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from controlbreast.classify.models import save_classifier, set_threads
from controlbreast.classify.predict import Predictor
from controlbreast.classify.train import fit_epochs, new_model
from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import FilterRow, SyntheticRow, manifest_bytes
from controlbreast.evaluation.config import SyntheticFilterConfig
from controlbreast.evaluation.fidelity import FeatureSpace
from controlbreast.evaluation.memorisation import nearest_cosine, nearest_ssim
from controlbreast.outputs import atomic_folder

FILTER = "filter"


def filter_folder(config: Config) -> Path:
    return Path(config.paths.models) / FILTER


def train_filter(config: Config) -> dict:
    """Train the filter's classifier on the real training split only; save it; its card as a dict."""
    settings = config.synthetic_filter
    set_threads(config.classifier.threads)
    train = load_image_set(config.paths.prepared, config.data.classes, splits=("train",))
    model, card = new_model(config, FILTER, settings.seed, int(train.images.shape[-1]))
    losses = fit_epochs(model, card, train, config, settings.epochs,
                        torch.Generator().manual_seed(settings.seed))
    with atomic_folder(filter_folder(config)) as build:
        save_classifier(build, model.eval(), card)
    return {"train_images": len(train), "epochs": settings.epochs, "final_loss": losses[-1],
            "train_ids": list(train.ids)}


def verdicts(config: Config, synthetic: ImageSet, train: ImageSet, folder: Path) -> list[dict]:
    """One ``FilterRow`` per synthetic image: intended-class probability, nearest training image's
    cosine (filter features) and SSIM, likely copy, and ``keeps``'s verdict at ``config``'s τ."""
    thresholds = config.synthetic_eval
    probabilities = Predictor.from_folder(folder).predict_pixels(list(synthetic.images))
    intended = probabilities[np.arange(len(synthetic)), synthetic.labels]
    space = FeatureSpace.classifier(folder)
    train_features = space(train.images)
    cosine, _ = nearest_cosine(space(synthetic.images), train_features, train_features.mean(dim=0))
    structural, _ = nearest_ssim(synthetic.images, train.images)
    copies = (cosine >= thresholds.copy_cosine) | (structural >= thresholds.copy_ssim)
    rows = [{"id": image_id, "label": synthetic.classes[label], "probability": round(float(p), 6),
             "copy_cosine": round(float(c), 6), "copy_ssim": round(float(s), 6), "likely_copy": bool(copy)}
            for image_id, label, p, c, s, copy in zip(synthetic.ids, synthetic.labels, intended, cosine,
                                                       structural, copies, strict=True)]
    return [row | {"kept": keeps(row, config.synthetic_filter)} for row in rows]


def keeps(verdict: dict, settings: SyntheticFilterConfig) -> bool:
    """The filter's rule on one verdict: intended-class probability >= τ and, with ``drop_copies``,
    not a likely copy (``tune`` applies it to its trials' sets at each trial's τ)."""
    copy = verdict["likely_copy"] and settings.drop_copies
    return verdict["probability"] >= settings.threshold and not copy


def filter_synthetic(config: Config) -> dict:
    """Score the synthetic set with the filter; write the verdicts atomically; kept counts per class."""
    folder = filter_folder(config)
    synthetic = load_image_set(config.paths.synthetic, config.data.classes, schema=SyntheticRow)
    train = load_image_set(config.paths.prepared, config.data.classes, splits=("train",))
    rows = verdicts(config, synthetic, train, folder)
    with atomic_folder(Path(config.paths.synthetic_filter)) as build:
        (build / "verdicts.csv").write_bytes(manifest_bytes(rows, FilterRow))
    made, kept = Counter(r["label"] for r in rows), Counter(r["label"] for r in rows if r["kept"])
    return {"threshold": config.synthetic_filter.threshold, "images": len(rows),
            "kept": sum(kept.values()), "likely_copies": sum(r["likely_copy"] for r in rows),
            "per_class": {c: {"made": made[c], "kept": kept[c]} for c in config.data.classes}}
