"""Label-consistency filtering of the synthetic set (HistoDiffusion, DreamDA): keep an image only if a
classifier of the real training split alone gives its intended class probability >= τ, and it is not
a likely copy of a training image.

The filter's classifier must not be the ``real`` arm's: that one kept the epoch with the best
*validation* AUC, so filtering with it would let validation images choose training data. This one
trains on the training split for a fixed ``synthetic_filter.epochs`` and never sees a validation or
test image. Copies are judged in its own features (centred cosine, as ``evaluate-synthetic``) and by
SSIM against every training image, with ``synthetic_eval``'s thresholds.

One filter per real fraction (``classifier.real_fractions``, and 1): the filter of fraction f trains
on the nested subset the arms at f train on and judges only the synthetic images made from that
subset's controls. A filter of the whole split would carry the labels of the images outside the
subset into a "fraction of the data" arm, through which synthetic images it keeps.

Outputs: ``<paths.models>/filter/<f>/`` (the classifiers) and ``<paths.synthetic_filter>/
verdicts.csv`` for the whole split, ``verdicts@<f>.csv`` below it (``FilterRow``: one verdict per
judged synthetic image, in the set's order).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from controlbreast.classify.data import synthetic_rows, verdicts_table
from controlbreast.classify.models import save_classifier, set_threads
from controlbreast.classify.predict import Predictor
from controlbreast.classify.train import fit_epochs, new_model
from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import FilterRow, SyntheticRow, manifest_bytes
from controlbreast.data.subsets import subset_ids
from controlbreast.evaluation.config import SyntheticFilterConfig
from controlbreast.evaluation.fidelity import FeatureSpace
from controlbreast.evaluation.memorisation import nearest_cosine, nearest_ssim
from controlbreast.outputs import atomic_folder

FILTER = "filter"


def filter_fractions(config: Config) -> list[float]:
    """The fractions of the real training split that get a filter: every real fraction, and 1."""
    return sorted({*config.classifier.real_fractions, 1.0})


def filter_folder(config: Config, fraction: float = 1.0) -> Path:
    return Path(config.paths.models) / FILTER / f"{fraction:g}"


def train_filter(config: Config) -> dict:
    """Train one filter per ``filter_fractions`` on that fraction's real training images only; save
    them in one atomic step; their cards as ``{fraction: {train_images, final_loss, train_ids}}``."""
    settings = config.synthetic_filter
    set_threads(config.classifier.threads)
    train = load_image_set(config.paths.prepared, config.data.classes, splits=("train",))
    cards, models = {}, {}
    for fraction in filter_fractions(config):
        subset = subset_ids(config, fraction)
        images = train.subset([i for i, image_id in enumerate(train.ids) if image_id in subset])
        model, card = new_model(config, FILTER, settings.seed, int(images.images.shape[-1]))
        losses = fit_epochs(model, card, images, config, settings.epochs,
                            torch.Generator().manual_seed(settings.seed))
        models[fraction] = (model.eval(), card)
        cards[fraction] = {"train_images": len(images), "final_loss": losses[-1],
                           "train_ids": list(images.ids)}
    with atomic_folder(Path(config.paths.models) / FILTER) as build:
        for fraction, (model, card) in models.items():
            save_classifier(build / f"{fraction:g}", model, card)
    return {"epochs": settings.epochs, "fractions": cards}


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
    """Score each fraction's synthetic images with that fraction's filter; write the verdicts in one
    atomic step; kept counts per class, the whole split's at the top and each fraction's under
    ``fractions``."""
    synthetic_folder = Path(config.paths.synthetic)
    train = load_image_set(config.paths.prepared, config.data.classes, splits=("train",))
    tables, counts = {}, {}
    for fraction in filter_fractions(config):
        positions = synthetic_rows(synthetic_folder, set(train.ids), subset_ids(config, fraction))
        synthetic = load_image_set(synthetic_folder, config.data.classes, schema=SyntheticRow,
                                   select=positions)
        rows = verdicts(config, synthetic, train, filter_folder(config, fraction))
        tables[verdicts_table(config, fraction).name] = manifest_bytes(rows, FilterRow)
        counts[fraction] = _kept_counts(rows, config.data.classes)
    with atomic_folder(Path(config.paths.synthetic_filter)) as build:
        for name, table in tables.items():
            (build / name).write_bytes(table)
    below = {f"{fraction:g}": found for fraction, found in counts.items() if fraction != 1.0}
    return {"threshold": config.synthetic_filter.threshold, **counts[1.0], "fractions": below}


def _kept_counts(rows: list[dict], classes: tuple[str, ...]) -> dict:
    made, kept = Counter(r["label"] for r in rows), Counter(r["label"] for r in rows if r["kept"])
    return {"images": len(rows), "kept": sum(kept.values()),
            "likely_copies": sum(r["likely_copy"] for r in rows),
            "per_class": {c: {"made": made[c], "kept": kept[c]} for c in classes}}
