"""The trained arms' probabilities on a split of prepared images.

Probabilities come from ``Predictor`` on the prepared PNG files decoded as ``controlbreast predict``
decodes them (once per split, each model loaded once for every set), so a probability in
``metrics/classifier.json``'s curves is the one ``predict`` prints for that file. An external
set (``external_images``) is read the same way, less the images ingest-external listed as
near-duplicates of training images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from controlbreast.classify.models import CARD
from controlbreast.classify.predict import Predictor
from controlbreast.classify.transforms import decode_image
from controlbreast.config import Config
from controlbreast.data.datasets import label_indices
from controlbreast.data.imageio import read_bytes
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.errors import DataError, MissingInputError, ModelError
from controlbreast.evaluation.external import excluded_ids
from controlbreast.mixing import ARMS, FRACTION_ARMS, FRACTIONS, RECIPES, fraction_arm


@dataclass(frozen=True)
class SplitImages:
    """One split of the prepared set as files: ``labels`` (n,) are indices into ``classes``;
    ``sources`` (n,) the source image of each (its own id unless it is a patch); ``external``:
    an external test set (its per-class AUCs are reported, see ``present_classes``)."""

    ids: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    sources: tuple[str, ...] | None = None
    external: bool = False
    pixels: tuple[np.ndarray, ...] = ()  # each file decoded once, as ``controlbreast predict`` decodes it

    @property
    def names(self) -> list[str]:
        return [str(path) for path in self.files]


@dataclass(frozen=True)
class ArmProbabilities:
    """Probabilities of every seed of one arm: ``val`` (S, n_val, C) and ``test`` (S, n_test, C)."""

    arm: str
    seeds: tuple[str, ...]
    val: np.ndarray
    test: np.ndarray


def split_images(config: Config, split: str, folder: Path | None = None,
                 exclude: frozenset[str] = frozenset()) -> SplitImages:
    """The ``split`` rows of the prepared manifest (or of ``folder``'s), less ``exclude``, with
    their image files."""
    folder = Path(folder or config.paths.prepared)
    rows = [row for row in read_manifest(folder / "manifest.csv", PreparedRow)
            if row.split == split and row.id not in exclude]
    if not rows:
        raise DataError(f"{folder}/manifest.csv: no {split} images")
    classes, files = tuple(config.data.classes), tuple(folder / "images" / f"{row.id}.png" for row in rows)
    return SplitImages(ids=tuple(row.id for row in rows), files=files,
                       labels=label_indices([row.label for row in rows], classes, folder / "manifest.csv"),
                       classes=classes, sources=tuple(row.source_image for row in rows),
                       pixels=tuple(decode_image(read_bytes(path, str(path)), str(path)) for path in files))


def images_per_class(images: SplitImages) -> dict[str, int]:
    """Images per class of ``data.classes`` (0 for a class the set lacks)."""
    return {name: int(np.sum(images.labels == c)) for c, name in enumerate(images.classes)}


def _seed_folders(folder: Path) -> list[Path]:
    folders = [p for p in folder.glob("seed-*") if (p / CARD).is_file()]
    return sorted(folders, key=lambda p: int(p.name.removeprefix("seed-")))


def trained_arms(root: Path, fractions: Sequence[float] = (),
                 recipes: Sequence[str] = ()) -> dict[str, list[Path]]:
    """``{arm: seed folders}`` of the arms trained under ``root``, in ``ARMS`` order, then the
    data-efficiency arms of ``fractions`` (``real@0.5``, ...) found under ``root/fractions``, then
    each of ``recipes`` at every fraction (under ``root/recipes``)."""
    below = [f for f in sorted(fractions) if f < 1.0]
    folders = {name: Path(root) / name for name in ARMS}
    folders |= {fraction_arm(arm, f): Path(root) / FRACTIONS / fraction_arm(arm, f)
                for f in below for arm in FRACTION_ARMS}
    folders |= {fraction_arm(name, f): Path(root) / RECIPES / fraction_arm(name, f)
                for name in recipes for f in sorted({*fractions, 1.0})}
    return {name: found for name, folder in folders.items() if (found := _seed_folders(folder))}


def load_arm(folders: Sequence[Path], classes: tuple[str, ...]) -> dict[str, Predictor]:
    """Each seed's model of one arm, by its seed folder's name (``seed-0``), loaded once for every
    set it predicts; a model of other classes than ``data.classes`` is refused."""
    models = {}
    for folder in folders:
        models[folder.name] = Predictor.from_folder(folder)
        if tuple(models[folder.name].card.classes) != classes:
            raise ModelError(f"{folder}: trained on classes {list(models[folder.name].card.classes)}, but "
                             f"data.classes is {list(classes)} (retrain the classifiers)")
    return models


def predict_split(models: dict[str, Predictor], images: SplitImages) -> np.ndarray:
    """(S, n, C): every seed's probabilities on ``images`` (its decoded ``pixels``)."""
    return np.stack([model.predict_decoded(images.pixels, images.names) for model in models.values()])


def predict_arm(arm: str, models: dict[str, Predictor], val: SplitImages,
                test: SplitImages) -> ArmProbabilities:
    """Probabilities of every seed's model on the validation and test images."""
    return ArmProbabilities(arm, tuple(models), predict_split(models, val), predict_split(models, test))


def external_images(config: Config, name: str) -> tuple[SplitImages, int]:
    """An external set's images less its near-duplicates of training images, and how many those are."""
    folder = Path(config.paths.external) / name
    if not (folder / "manifest.csv").is_file():
        raise MissingInputError(f"{folder}: external set {name!r} not ingested (run ingest-external)")
    excluded = excluded_ids(folder)
    images = split_images(config, "test", folder, frozenset(excluded))
    return replace(images, external=True), len(excluded)
