"""Training one classifier (one arm, one seed), with selection on the real validation split only.

The loop is deliberately small: AdamW with a cosine schedule, augmented batches, class-weighted
loss or a balanced sampler, and after each epoch the validation macro AUC, which decides both early
stopping and the epoch whose weights are kept. The test split is never loaded here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from controlbreast import distributed
from controlbreast.classify.data import TrainingData, input_view, load_training_data, recipe
from controlbreast.classify.models import (
    ModelCard,
    create_classifier,
    normalisation,
    probabilities,
    set_threads,
)
from controlbreast.classify.scores import macro_auc, macro_auc_interval
from controlbreast.classify.transforms import Augment, normalise, scale
from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet
from controlbreast.errors import DataError
from controlbreast.mixing import fraction_arm

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    """The kept model (eval mode), its card, per-epoch history and the ids it was trained and
    selected on (kept so that tests and audits can check what reached training)."""

    model: nn.Module
    card: ModelCard
    history: list[dict[str, float]]
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    data: TrainingData


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled so a balanced set gets weight 1 everywhere."""
    counts = np.bincount(labels, minlength=classes).astype(float)
    return torch.tensor(len(labels) / (classes * np.maximum(counts, 1.0)), dtype=torch.float32)


def epoch_order(labels: np.ndarray, balance: str, generator: torch.Generator) -> torch.Tensor:
    """Sample order of one epoch: a permutation, or a class-balanced draw with replacement."""
    if balance != "sampler":
        return torch.randperm(len(labels), generator=generator)
    weights = class_weights(labels, int(labels.max()) + 1)[torch.from_numpy(labels)]
    return torch.multinomial(weights, len(labels), replacement=True, generator=generator)


def batch_transform(config: Config, augment: bool) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """What a training batch goes through: classic augmentation, or nothing for an arm whose recipe
    turns it off (``real-noaug``, the arm that measures what augmentation itself buys)."""
    if not augment:
        return lambda batch, generator: batch
    return Augment(config.classifier.augment)


Step = Callable[[torch.Tensor, torch.Tensor], float]


def _train_epoch(inputs: torch.Tensor, targets: torch.Tensor, card: ModelCard, config: Config, step: Step,
                 augment: bool, generator: torch.Generator) -> float:
    settings = config.classifier
    transform = batch_transform(config, augment)
    order = epoch_order(targets.numpy(), settings.balance, generator)
    losses = []
    for start in range(0, len(order), settings.batch_size):
        index = order[start:start + settings.batch_size]
        if len(index) < 2:  # batch norm needs two samples
            continue
        batch = normalise(transform(inputs[index], generator), card)
        losses.append(step(batch, targets[index]))
    return float(np.mean(losses))


def _validate(model: nn.Module, inputs: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    probs = probabilities(model, inputs)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {"val_auc": float(macro_auc(probs, labels)), "val_loss": float(-np.log(picked).mean())}


def data_parallel(model: nn.Module) -> nn.Module:
    """``model`` itself alone; under a multi-process launch, wrapped in ``DistributedDataParallel``
    (gloo: the classifier trains on CPUs) with its batch norms made global (``distributed.py``)."""
    if not distributed.process_group():
        return model
    return nn.parallel.DistributedDataParallel(distributed.global_batch_norm(model))


def new_model(config: Config, name: str, seed: int, image_size: int) -> tuple[nn.Module, ModelCard]:
    """A fresh ``classifier.model`` seeded with ``seed``, and its card (``name``: the arm)."""
    settings = config.classifier
    torch.manual_seed(seed)
    model = create_classifier(settings.model, len(config.data.classes), settings.model_kwargs,
                              settings.pretrained)
    mean, std = normalisation(model)
    view = input_view(config)
    card = ModelCard(model=settings.model, classes=config.data.classes, image_size=image_size,
                     resize=config.data.resize, mean=mean, std=std, model_kwargs=dict(settings.model_kwargs),
                     arm=name, seed=seed, modality=view.modality, patches=view.patches,
                     mammography=config.data.mammography.model_dump())
    return model, card


def optimiser(model: nn.Module, config: Config, epochs: int, labels: np.ndarray) -> tuple[Step, object]:
    """One optimisation step on a normalised batch (AdamW; class-weighted cross-entropy when
    ``classifier.balance`` is ``weights``) and its cosine schedule over ``epochs``."""
    settings = config.classifier
    weight = class_weights(labels, len(config.data.classes)) if settings.balance == "weights" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    trained, part, processes = data_parallel(model), distributed.shard(), distributed.world_size()

    def step(batch: torch.Tensor, target: torch.Tensor) -> float:
        """One update on the global batch; this process's model sees its ``part`` of the rows, and
        its loss is its share of the global batch's (weighted) mean."""
        if processes == 1:  # the mean itself: bit for bit what single-process runs always gave
            loss = F.cross_entropy(trained(batch), target, weight=weight)
        else:
            total = weight[target].sum() if weight is not None else len(target)
            loss = F.cross_entropy(trained(batch[part]), target[part], weight=weight, reduction="sum") / total
        optimizer.zero_grad(set_to_none=True)
        (loss * processes).backward()  # gradients are averaged over processes
        optimizer.step()
        return distributed.total(loss.detach())

    return step, schedule


def fit_epochs(model: nn.Module, card: ModelCard, images: ImageSet, config: Config, epochs: int,
               generator: torch.Generator, augment: bool = True) -> list[float]:
    """``epochs`` epochs on ``images`` with an optimiser of their own and nothing chosen on any
    held-out image (a pretraining phase, the filter's classifier); the mean loss of each epoch."""
    step, schedule = optimiser(model, config, epochs, images.labels)
    inputs, targets = scale(images.images), torch.from_numpy(images.labels)
    model.train()
    losses = []
    for _ in tqdm(range(epochs), desc=f"{card.arm} seed {card.seed} (fixed epochs)", unit="epoch"):
        losses.append(_train_epoch(inputs, targets, card, config, step, augment, generator))
        schedule.step()
    return losses


def train_classifier(config: Config, arm: str, seed: int, on_epoch: EpochCallback | None = None,
                     data: TrainingData | None = None, fraction: float = 1.0) -> TrainResult:
    """Train ``arm`` with ``seed`` (on ``fraction`` of the real training split); returns the epoch
    with the best validation macro AUC. A ``schedule: pretrain`` recipe first trains
    ``classifier.pretrain_epochs`` on its synthetic images alone (no selection), then here."""
    settings = config.classifier
    set_threads(settings.threads)
    data = data or load_training_data(config, arm, seed, fraction)
    augment = recipe(config, arm).augment
    generator = torch.Generator().manual_seed(seed)
    model, card = new_model(config, fraction_arm(arm, fraction), seed, int(data.train.images.shape[-1]))
    if data.pretrain is not None:
        fit_epochs(model, card, data.pretrain, config, settings.pretrain_epochs, generator, augment)
    inputs, targets = scale(data.train.images), torch.from_numpy(data.train.labels)
    val_inputs = normalise(scale(data.val.images), card)
    step, schedule = optimiser(model, config, settings.epochs, data.train.labels)
    history, best, best_state, stale = [], -np.inf, None, 0
    for epoch in (bar := tqdm(range(1, settings.epochs + 1), desc=f"{card.arm} seed {seed}", unit="epoch",
                              disable=not distributed.is_main_process())):
        model.train()
        metrics = {"train_loss": _train_epoch(inputs, targets, card, config, step, augment, generator),
                   "lr": schedule.get_last_lr()[0]}
        schedule.step()
        metrics |= distributed.agreed(_validate(model, val_inputs, data.val.labels))
        history.append(metrics)
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val_auc=f"{metrics['val_auc']:.3f}")
        if on_epoch:
            on_epoch(epoch, metrics)
        if metrics["val_auc"] > best:
            best, best_state, stale = metrics["val_auc"], copy.deepcopy(model.state_dict()), 0
            card = replace(card, epoch=epoch, val_auc=best)
        else:
            stale += 1
            if stale >= settings.patience:
                break
    if best_state is None:
        raise DataError(f"{arm} seed {seed}: validation AUC was never finite (is a class missing "
                         "from the validation split?)")
    model.load_state_dict(best_state)
    low, high = macro_auc_interval(probabilities(model.eval(), val_inputs), data.val.labels, seed=seed)
    card = replace(card, val_auc_low=low, val_auc_high=high)
    return TrainResult(model, card, history, data.train.ids, data.val.ids, data)
