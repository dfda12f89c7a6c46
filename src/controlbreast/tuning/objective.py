"""The objective of one trial: a synthetic set made with the trial's sampler settings from
**training-split** controls, then ``real+synthetic`` classifiers trained with the trial's mix ratio,
scored by the mean validation macro AUC over ``tune.seeds``. With ``tune.filter_threshold``
searched, a trial draws only the images the label-consistency filter (``train-filter``'s model, of
the training split alone) keeps at the trial's τ, at the ratio the scarcest class still allows.

Only the real ``train`` and ``val`` rows are ever read (``load_image_set(..., splits=("train",
"val"))``; ``plan`` takes training controls only); the test split is left to ``evaluate``.

Synthetic sets are cached under ``<paths.tune_cache>/<key>/`` where ``key`` hashes everything that
determines the set (models, sampler, guidance, ControlNet scale, count, seed, variation), so trials
sharing a guidance value share a set and a rerun of the stage samples nothing again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from controlbreast.classify.data import (
    TrainingData,
    concatenate,
    draw_counts,
    draw_synthetic,
    kept_positions,
    kept_ratio,
    synthetic_rows,
)
from controlbreast.classify.train import train_classifier
from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_image_set
from controlbreast.data.manifest import SyntheticRow
from controlbreast.errors import MissingInputError
from controlbreast.evaluation.filtering import filter_folder, keeps, verdicts
from controlbreast.generation.generate import generate_set, model_hash, set_sampling
from controlbreast.mixing import check_mix_fits, tune_per_class
from controlbreast.tuning.search import reporter, suggest
from controlbreast.tuning.tuned import apply_tuned

KEY_FILE = "cache-key.json"


def trial_config(config: Config, values: dict[str, float]) -> Config:
    """``config`` with the trial's values applied; the set's size is ``tune.per_class`` unless
    ``synthetic_count`` is searched."""
    applied = apply_tuned(config, values)
    if "synthetic_count" not in values:
        applied = applied.model_copy(update={"generate": applied.generate.model_copy(
            update={"per_class": config.tune.per_class})})
    return applied


def set_key(config: Config, models_hash: str) -> dict:
    """Everything that determines a synthetic set (``config`` is a trial's config)."""
    return {"model_hash": models_hash, "sampling": set_sampling(config).model_dump(mode="json"),
            "per_class": config.generate.per_class, "seed": config.generate.seed,
            "strength": config.generate.strength,
            "variation": config.generate.variation.model_dump(mode="json"),
            "classes": list(config.data.classes), "image_size": config.data.image_size}


def cached_set(config: Config, models_hash: str) -> Path:
    """The folder of the trial's synthetic set, generated unless the cache has it."""
    key = set_key(config, models_hash)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(config.paths.tune_cache) / digest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{digest}.lock", "w") as lock:  # workers wait for, not redo, a set
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / KEY_FILE).is_file():
            generate_set(config.model_copy(update={"paths": config.paths.model_copy(
                update={"synthetic": folder})}), progress=False)
            (folder / KEY_FILE).write_text(json.dumps(key, indent=2, sort_keys=True))
    return folder


@dataclass
class Objective:
    """``objective(trial) -> mean validation AUC``; real images are loaded once per worker."""

    config: Config
    train: ImageSet
    val: ImageSet
    models_hash: str
    set_verdicts: dict[str, list[dict]] = field(default_factory=dict)  # by set folder: the filter's scores

    @classmethod
    def build(cls, config: Config) -> Objective:
        real = load_image_set(config.paths.prepared, config.data.classes, splits=("train", "val"))
        train, classes = real.split("train"), len(config.data.classes)
        check_mix_fits(config.tune, classes, len(train))
        per_class = tune_per_class(config.tune, classes, len(train))  # auto: as the data needs
        config = config.model_copy(update={"tune": config.tune.model_copy(update={"per_class": per_class})})
        return cls(config, train, real.split("val"), model_hash(config.paths.models))

    def data(self, config: Config, folder: Path, seed: int) -> TrainingData:
        """Real train + the trial's set drawn as the ``real+synthetic`` arm draws (``mix_ratio``,
        per class or pooled); real validation."""
        train_ids = set(self.train.ids)
        eligible = synthetic_rows(folder, train_ids, train_ids)
        labels = [config.data.classes[k] for k in self.train.labels]
        ratio, mode = config.classifier.mix_ratio, config.classifier.synthetic_draw
        if self.config.tune.filter_threshold is not None:
            kept = {v["id"] for v in self.filter_verdicts(folder) if keeps(v, config.synthetic_filter)}
            eligible, pool = kept_positions(folder, eligible, kept)
            ratio = kept_ratio(labels, pool, ratio, mode)
        counts = draw_counts(labels, ratio, mode)
        if not sum(counts.values()):  # the filter kept no image of some class: real images alone
            return TrainingData(self.train, self.val, len(self.train), 0)
        extra = draw_synthetic(folder, config.data.classes, eligible, counts, seed)
        return TrainingData(concatenate(self.train, extra), self.val, len(self.train), len(extra))

    def filter_verdicts(self, folder: Path) -> list[dict]:
        """The filter's verdicts on the set in ``folder`` (scored once per worker; τ applied per trial)."""
        if folder.name not in self.set_verdicts:
            model = filter_folder(self.config)
            if not model.is_dir():
                raise MissingInputError(f"{model}: no filter classifier for tune.filter_threshold (run "
                                        "`controlbreast train-filter` first)")
            synthetic = load_image_set(folder, self.config.data.classes, schema=SyntheticRow)
            self.set_verdicts[folder.name] = verdicts(self.config, synthetic, self.train, model)
        return self.set_verdicts[folder.name]

    def __call__(self, trial: optuna.Trial) -> float:
        config = trial_config(self.config, suggest(trial, self.config))
        folder = cached_set(config, self.models_hash)
        trial.set_user_attr("synthetic_set", folder.name)
        scores = []
        for index, seed in enumerate(self.config.tune.seeds):
            report = reporter(trial, index * config.classifier.epochs)
            result = train_classifier(config, "real+synthetic", seed, on_epoch=report,
                                      data=self.data(config, folder, seed))
            scores.append(result.card.val_auc)
        return sum(scores) / len(scores)


def cache_entries(config: Config) -> list[dict]:
    """The cached sets: folder, images, MiB, and whether the current models drew them."""
    root, current = Path(config.paths.tune_cache), model_hash(config.paths.models)
    entries = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        key_file = folder / KEY_FILE
        key = json.loads(key_file.read_text()) if key_file.is_file() else {}
        images = list((folder / "images").glob("*.png"))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        entries.append({"folder": folder, "images": len(images), "mib": size,
                        "guidance_scale": key.get("sampling", {}).get("guidance_scale"),
                        "current": key.get("model_hash") == current})
    return entries


def prune_cache(config: Config) -> list[Path]:
    """Delete the cached sets that other models than the current ones drew; returns them."""
    stale = [entry["folder"] for entry in cache_entries(config) if not entry["current"]]
    for folder in stale:
        shutil.rmtree(folder)
    return stale
