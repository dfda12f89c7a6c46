"""Can a classifier tell the synthetic images from real ones? A classifier two-sample test.

The automated counterpart of a reader study: a small classifier (``classifier.model``, two
outputs) learns "real training image vs synthetic image" on one half of the synthetic set (split by
control), and is scored on images it never saw: the real *validation* split against the other
half, whose source images are kept out of its real training images too (see
``evaluation.synthetic.real_vs_synthetic``).
Its AUC is 0.5 when the two are indistinguishable and 1 when every synthetic image gives itself
away; the interval is a bootstrap over the held-out images (stratified real/synthetic), overall and
within each class. No augmentation: artefacts that a flip or warp would hide are what we look for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from controlbreast.classify.config import ClassifierConfig
from controlbreast.classify.models import create_classifier, normalisation, probabilities, set_threads
from controlbreast.classify.scores import auc
from controlbreast.classify.transforms import scale
from controlbreast.evaluation.bootstrap import bootstrap_interval


@dataclass(frozen=True)
class TwoSamples:
    """Images (N, H, W) uint8 and class indices (N,) of the real and the other (synthetic) sample."""

    real: np.ndarray
    real_labels: np.ndarray
    other: np.ndarray
    other_labels: np.ndarray


def split_by_control(control_ids: list[str], seed: int) -> np.ndarray:
    """(N,) bool: True for the synthetic images that train the discriminator (half of the controls,
    seeded), False for those held out to score it."""
    controls = sorted(set(control_ids))
    chosen = np.random.default_rng(seed).permutation(len(controls))[: (len(controls) + 1) // 2]
    training = {controls[i] for i in chosen}
    return np.array([c in training for c in control_ids], dtype=bool)


def train_discriminator(train: TwoSamples, settings: ClassifierConfig, epochs: int,
                        seed: int) -> tuple[torch.nn.Module, tuple[float, float]]:
    """A ``settings.model`` with two outputs (real, other), trained ``epochs`` epochs, balanced by
    class weights; returns it in eval mode and its input mean and std."""
    set_threads(settings.threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = create_classifier(settings.model, 2, settings.model_kwargs, settings.pretrained)
    mean, std = normalisation(model)
    inputs = (scale(np.concatenate([train.real, train.other])) - mean) / std
    targets = torch.cat([torch.zeros(len(train.real)), torch.ones(len(train.other))]).long()
    weight = len(targets) / (2.0 * torch.bincount(targets, minlength=2).clamp(min=1).float())
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order), settings.batch_size):
            index = order[start:start + settings.batch_size]
            if len(index) < 2:  # batch norm needs two samples
                continue
            loss = F.cross_entropy(model(inputs[index]), targets[index], weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval(), (mean, std)


def _auc_interval(scores: np.ndarray, is_other: np.ndarray, resamples: int, seed: int,
                  confidence: float) -> dict:
    interval = bootstrap_interval(lambda i: auc(scores[i], is_other[i]), is_other.astype(int),
                                  resamples, seed, confidence)
    return {**interval.as_dict(), "real": int((~is_other).sum()), "synthetic": int(is_other.sum())}


def separability(train: TwoSamples, held_out: TwoSamples, classes: tuple[str, ...],
                 settings: ClassifierConfig, epochs: int, resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> dict:
    """AUC (with interval) of a discriminator trained on ``train`` and scored on ``held_out``:
    ``overall`` and ``per_class`` (real vs synthetic images of that class only)."""
    model, (mean, std) = train_discriminator(train, settings, epochs, seed)
    images = np.concatenate([held_out.real, held_out.other])
    scores = probabilities(model, (scale(images) - mean) / std)[:, 1]
    is_other = np.r_[np.zeros(len(held_out.real), bool), np.ones(len(held_out.other), bool)]
    labels = np.concatenate([held_out.real_labels, held_out.other_labels])
    report = {"overall": _auc_interval(scores, is_other, resamples, seed, confidence), "per_class": {},
              "epochs": epochs, "trained_on": {"real": len(train.real), "synthetic": len(train.other)}}
    for c, name in enumerate(classes):
        member = labels == c
        if is_other[member].any() and (~is_other[member]).any():
            report["per_class"][name] = _auc_interval(scores[member], is_other[member], resamples, seed,
                                                      confidence)
    return report


def source_class_auc(labels: np.ndarray, synthetic: np.ndarray) -> float | None:
    """The shortcut probe of a mixed training set: how well the class predicts the source.

    Each image's score is the synthetic share of its class; the AUC of that score for "is
    synthetic" is the best any rule that sees only the class can do. 0.5: the same synthetic:real
    ratio in every class (the source says nothing about the class, nothing to learn instead of the
    disease); 1: some class is all synthetic and the others all real. ``labels`` (N,) class
    indices, ``synthetic`` (N,) bool; None when the set has only one source.
    """
    synthetic = np.asarray(synthetic, dtype=bool)
    if synthetic.all() or not synthetic.any():
        return None
    classes, index = np.unique(labels, return_inverse=True)
    share = np.bincount(index, weights=synthetic, minlength=len(classes)) / np.bincount(index)
    return float(auc(share[index], synthetic))
