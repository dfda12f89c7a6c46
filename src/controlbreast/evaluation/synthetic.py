"""``evaluate-synthetic``: are the synthetic images realistic, faithful to their controls and their
classes, and not copies of training images? Each figure sits beside a reference that says what a
good value is on this data.

- realism: FID/KID/precision/recall in the real-only classifier's features against the real training
  split, overall and per class; reference: the real validation split against the same, and the
  synthetic set again at the validation split's size (these metrics depend on sample size).
- control fidelity: edge F1 of each image against the control that conditioned it, beside the
  same against shuffled controls (across the set, and within each class); reference: real
  validation images with their own controls (for edges, the ratio a perfect generator reaches).
- lesion placement: Dice of a lesion segmenter trained on the real training masks
  (``evaluation.segmenter``) between its segmentation of each synthetic image and the mask of the
  image its control came from, beside masks shuffled within the class; reference: real validation
  images with their own masks.
- class fidelity: the real-only classifier's accuracy and macro AUC on the intended labels;
  reference: the same classifier on the real validation split.
- memorisation: nearest training image by feature cosine and by SSIM; reference: validation images.
- separability: AUC of a classifier trained to tell real training images from synthetic ones,
  scored on the real validation split and held-out synthetic images (``evaluation.separability``);
  reference: 0.5.

Returns the report and the pictures (``grid-<class>.png``: real source | control used | synthetic;
``closest-pairs.png``: synthetic | nearest training image by SSIM | by features); the stage
(``stages/evaluate_synthetic.py``) writes them and prints the warnings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from controlbreast.classify.data import arm_plan, check_provenance
from controlbreast.classify.models import CARD, ModelCard
from controlbreast.classify.predict import Predictor
from controlbreast.classify.scores import macro_auc
from controlbreast.config import Config
from controlbreast.controls.fidelity import (
    control_f1,
    mask_dice,
    shuffled,
    shuffled_within_class,
    versus_shuffled,
)
from controlbreast.data.datasets import ImageSet, load_controls, load_image_set
from controlbreast.data.manifest import SyntheticRow, read_manifest
from controlbreast.errors import DataError, MissingInputError
from controlbreast.evaluation.config import SyntheticEvalConfig
from controlbreast.evaluation.fidelity import (
    FeatureSpace,
    frechet_distance,
    realism_at_sizes,
    realism_by_class,
)
from controlbreast.evaluation.memorisation import distribution, nearest_cosine, nearest_ssim
from controlbreast.evaluation.segmenter import dice_against_masks, load_segmenter, masks_of
from controlbreast.evaluation.separability import TwoSamples, separability, source_class_auc, split_by_control
from controlbreast.generation.variation import Variation, apply_variation
from controlbreast.grids import side_by_side
from controlbreast.mixing import fraction_arm


def real_classifier(config: Config) -> Path:
    """The real-only classifier that judges: ``synthetic_eval.classifier_seed``, else the seed with
    the best validation AUC (chosen on validation, never on test)."""
    root = Path(config.paths.classifiers) / "real"
    seed = config.synthetic_eval.classifier_seed
    if seed is not None:
        folder = root / f"seed-{seed}"
        if not (folder / "classifier.json").is_file():
            raise MissingInputError(f"{folder}: no real-only classifier of seed {seed} "
                                    "(synthetic_eval.classifier_seed)")
        return folder
    cards = sorted(root.glob("seed-*/classifier.json"))
    if not cards:
        raise MissingInputError(f"{root}: no real-only classifier (run `controlbreast train-classifier "
                                "--arm real` first)")
    return max(cards, key=lambda card: json.loads(card.read_text())["val_auc"]).parent


def control_fidelity(images: np.ndarray, controls: np.ndarray, labels: np.ndarray, config: Config) -> dict:
    """Edge F1 against own controls vs shuffled ones: overall (shuffled across the set) and per
    class (shuffled within the class, the stricter baseline)."""
    channels, tolerance = config.controls.channels, config.synthetic_eval.edge_tolerance
    seed = config.synthetic_eval.seed

    def f1(order: np.ndarray) -> np.ndarray:
        return control_f1(images, controls[order], channels, config.controls, tolerance)

    matched = f1(np.arange(len(images)))
    across, within = f1(shuffled(len(images), seed)), f1(shuffled_within_class(labels, seed))
    per_class = {name: versus_shuffled(matched[labels == c], within[labels == c])
                 for c, name in enumerate(config.data.classes) if (labels == c).any()}
    report = {"edge_f1": versus_shuffled(matched, across),
              "edge_f1_within_class": versus_shuffled(matched, within),
              "tolerance_px": tolerance, "measured_on": "+".join(channels), "per_class": per_class}
    if "mask" in channels:
        report["mask_dice"] = _dice_summary(images, controls, channels, labels, seed)
    return report


def real_control_fidelity(config: Config, val: ImageSet) -> dict:
    """``control_fidelity`` of the real validation images with their own controls: what a generator
    that drew real images would score. For edge controls the matched F1 is 1 (the control is the
    image's Canny map) and the ratio is the ceiling of the synthetic ratio: dense (speckle) edges
    overlap any other image's within the tolerance, which lowers it (BUSI, 5-px blur: 1.43)."""
    controls = load_controls(Path(config.paths.controls), val.ids, config.controls.channels)
    return control_fidelity(val.images, controls, val.labels, config)


def _dice_summary(images: np.ndarray, controls: np.ndarray, channels: tuple[str, ...], labels: np.ndarray,
                  seed: int) -> dict[str, float]:
    """Dark-region Dice with the own mask vs a mask shuffled within the class (lesion images only)."""
    matched = mask_dice(images, controls, channels)
    within = mask_dice(images, controls[shuffled_within_class(labels, seed)], channels)
    kept = np.isfinite(matched) & np.isfinite(within)
    if not kept.any():
        return {"images": 0}
    return {**versus_shuffled(matched[kept], within[kept]), "images": int(kept.sum())}


def source_masks(config: Config, train: ImageSet, sources: list[tuple[str, str]]) -> np.ndarray:
    """(N, H, W) bool: for each synthetic image's (control id, variation JSON), the mask of the
    training image its control came from (empty for a normal one), varied as the control was."""
    masks, _ = masks_of(Path(config.paths.prepared), train, config.data.lesion_labels)
    position = {image_id: i for i, image_id in enumerate(train.ids)}

    def varied(control_id: str, variation: str) -> np.ndarray:
        source = masks[position[control_id]][None].astype(np.uint8) * 255
        return apply_variation(source, Variation.from_json(variation), ("mask",))[0] > 127

    return np.stack([varied(*source) for source in sources])


def lesion_placement(config: Config, sets: dict[str, ImageSet], rows: dict[str, SyntheticRow]) -> dict:
    """Segmenter Dice of each synthetic image with its source's (varied) mask, beside masks shuffled
    within the class, overall and per class; the real validation images with their own masks are the
    reference. ``{"images": 0}`` without a segmenter (a data set with no training masks)."""
    segmenter = load_segmenter(Path(config.paths.models) / "segmenter")
    if segmenter is None:
        return {"images": 0}
    synthetic, val, seed = sets["synthetic"], sets["val"], config.synthetic_eval.seed
    found, labels = segmenter.masks(synthetic.images), synthetic.labels
    sources = [(rows[image_id].control_id, rows[image_id].variation) for image_id in synthetic.ids]
    masks = source_masks(config, sets["train"], sources)
    per_class = {name: dice_against_masks(found[labels == c], masks[labels == c], labels[labels == c], seed)
                 for c, name in enumerate(config.data.classes) if (labels == c).any()}
    val_masks, _ = masks_of(Path(config.paths.prepared), val, config.data.lesion_labels)
    reference = dice_against_masks(segmenter.masks(val.images), val_masks, val.labels, seed)
    return {**dice_against_masks(found, masks, labels, seed), "per_class": per_class,
            "reference_real_val": reference}


def class_fidelity(predictor: Predictor, synthetic: ImageSet, val: ImageSet) -> dict:
    """Accuracy and macro AUC of the real-only classifier on synthetic images (intended labels)."""
    def scores(images: ImageSet) -> dict:
        probabilities = predictor.predict_pixels(list(images.images))
        correct = probabilities.argmax(axis=1) == images.labels
        return {"accuracy": float(correct.mean()),
                "macro_auc": float(macro_auc(probabilities, images.labels)),
                "recall": {name: float(correct[images.labels == c].mean())
                           for c, name in enumerate(images.classes) if (images.labels == c).any()}}

    return scores(synthetic) | {"reference_real_val": scores(val)}


def memorisation(features: dict[str, torch.Tensor], sets: dict[str, ImageSet],
                 cfg: SyntheticEvalConfig) -> tuple[dict, np.ndarray]:
    """Nearest training image of each synthetic (and, as reference, each validation) image.

    Returns the report and, for the synthetic images, (4, N): cosine, its index, SSIM, its index.
    """
    found: dict[str, np.ndarray] = {}
    report: dict[str, dict] = {}
    centre = features["train"].mean(dim=0)
    for name, key in (("reference_real_val", "val"), ("synthetic", "synthetic")):
        cosine, cosine_index = nearest_cosine(features[key], features["train"], centre)
        structural, ssim_index = nearest_ssim(sets[key].images, sets["train"].images)
        report[name] = {"feature_cosine": distribution(cosine, cfg.copy_cosine),
                        "ssim": distribution(structural, cfg.copy_ssim)}
        found[name] = np.stack([cosine, cosine_index, structural, ssim_index])
    cosine, _, structural, _ = found["synthetic"]
    report["likely_copies"] = int(((cosine >= cfg.copy_cosine) | (structural >= cfg.copy_ssim)).sum())
    for view, row in (("feature_cosine", 0), ("ssim", 2)):  # closer than any held-out real image
        closest_real = found["reference_real_val"][row].max()
        report["synthetic"][view]["fraction_above_real_val_max"] = float((found["synthetic"][row]
                                                                          > closest_real).mean())
    return report, found["synthetic"]


def class_grids(synthetic: ImageSet, controls: np.ndarray, sources: np.ndarray,
                rows: int) -> dict[str, np.ndarray]:
    """Per class: real image the control came from | control used | synthetic, ``rows`` rows."""
    grids = {}
    for c, name in enumerate(synthetic.classes):
        members = np.flatnonzero(synthetic.labels == c)[:rows]
        if len(members):
            grids[f"grid-{name}.png"] = side_by_side(sources[members], controls[members],
                                                     synthetic.images[members])
    return grids


def closest_pairs(synthetic: ImageSet, train: ImageSet, nearest: np.ndarray, count: int) -> np.ndarray:
    """Synthetic | nearest training image by SSIM | by features, for the ``count`` highest SSIMs."""
    cosine_index, structural, ssim_index = nearest[1].astype(int), nearest[2], nearest[3].astype(int)
    order = np.argsort(-structural, kind="stable")[:count]
    return side_by_side(synthetic.images[order], train.images[ssim_index[order]],
                        train.images[cosine_index[order]])


def realism(features: dict[str, torch.Tensor], sets: dict[str, ImageSet], cfg: SyntheticEvalConfig) -> dict:
    """FID/KID/PR of synthetic vs train, and of real validation vs train as the reference."""
    settings = {"kid_subset_size": cfg.kid_subset_size, "kid_subsets": cfg.kid_subsets,
                "prc_neighborhood": cfg.prc_neighborhood}

    def against_train(found: dict[str, torch.Tensor], key: str) -> dict:
        return realism_by_class(found[key], sets[key].labels, found["train"], sets["train"].labels,
                                sets["train"].classes, seed=cfg.seed, **settings)

    out = {**against_train(features, "synthetic"), "reference_real_val": against_train(features, "val")}
    sizes = np.bincount(sets["val"].labels, minlength=len(sets["val"].classes))
    available = np.bincount(sets["synthetic"].labels, minlength=len(sizes))
    if (available >= sizes).all():
        out["synthetic_at_reference_size"] = realism_at_sizes(
            features["synthetic"], sets["synthetic"].labels, features["train"], sets["train"].labels,
            sets["train"].classes, sizes, seed=cfg.seed, **settings)
    if cfg.inception_weights is not None:
        inception = FeatureSpace.inception(cfg.inception_weights)
        found = {key: inception(images.images) for key, images in sets.items()}
        out["inception_fid"] = {"synthetic": frechet_distance(found["synthetic"], found["train"]),
                                "reference_real_val": frechet_distance(found["val"], found["train"])}
    return out


def real_vs_synthetic(config: Config, sets: dict[str, ImageSet], rows: dict[str, SyntheticRow]) -> dict:
    """The two-sample test. Controls are split in two halves: the discriminator learns from the
    synthetic images of one half and the real training images outside the other half; it is scored
    on the real validation split and the other half's synthetic images, whose source images it has
    never seen (a memorising discriminator would otherwise call them real)."""
    synthetic, cfg = sets["synthetic"], config.synthetic_eval
    controls = [rows[i].control_id for i in synthetic.ids]
    training = split_by_control(controls, cfg.seed)
    held_out_sources = {c for c, learn in zip(controls, training, strict=True) if not learn}
    train, val = sets["train"], sets["val"]
    real = np.array([i not in held_out_sources for i in train.ids], dtype=bool)
    learn = TwoSamples(train.images[real], train.labels[real], synthetic.images[training],
                       synthetic.labels[training])
    score = TwoSamples(val.images, val.labels, synthetic.images[~training], synthetic.labels[~training])
    return separability(learn, score, tuple(synthetic.classes), config.classifier, cfg.separability_epochs,
                        cfg.bootstrap, cfg.seed)


def _load(config: Config) -> tuple[dict[str, ImageSet], dict[str, SyntheticRow], np.ndarray, np.ndarray]:
    """The synthetic, train and val sets; the synthetic manifest's rows by id; the synthetic controls;
    each one's source training image."""
    classes, folder = config.data.classes, Path(config.paths.synthetic)
    synthetic = load_image_set(folder, classes, schema=SyntheticRow)
    prepared = load_image_set(config.paths.prepared, classes, ("train", "val"))
    train = prepared.split("train")
    check_provenance(folder, set(train.ids))
    rows = {row.id: row for row in read_manifest(folder / "manifest.csv", SyntheticRow)}
    position = {image_id: i for i, image_id in enumerate(train.ids)}
    sources = train.images[[position[rows[i].control_id] for i in synthetic.ids]]
    controls = load_controls(folder / "controls", synthetic.ids, config.controls.channels)
    return {"synthetic": synthetic, "train": train, "val": prepared.split("val")}, rows, controls, sources


def mixed_arms(config: Config) -> list[str]:
    """The arms whose training set mixes real and synthetic images: ``real+synthetic`` and the
    recipes that add synthetic images to real ones in one set."""
    return ["real+synthetic", *(name for name, r in config.classifier.recipes.items()
                                if r.real == "once" and r.synthetic != "none" and r.schedule == "mixed")]


def shortcut_probe(config: Config) -> tuple[dict, list[str]]:
    """Per mixed arm and real fraction: the source–class AUC of its training set
    (``separability.source_class_auc``; first seed's draw), which should be 0.5; and a warning line
    for each arm the set is too small to draw, left out (training it will fail the same way)."""
    probe, skipped, seed = {}, [], config.classifier.seeds[0]
    for arm in mixed_arms(config):
        for fraction in sorted(config.classifier.real_fractions):
            try:
                plan = arm_plan(config, arm, seed, fraction)
            except DataError as error:
                skipped.append(f"evaluate-synthetic: shortcut probe of {fraction_arm(arm, fraction)} "
                               f"skipped: {error}")
                continue
            names = plan.real_labels + plan.synthetic_labels
            labels = np.array([config.data.classes.index(c) for c in names])
            synthetic = np.arange(len(labels)) >= len(plan.real_labels)
            probe[fraction_arm(arm, fraction)] = {"real": len(plan.real_labels),
                                                  "synthetic": int(synthetic.sum()),
                                                  "source_class_auc": source_class_auc(labels, synthetic)}
    return probe, skipped


def judge_warning(judge: Path, card: ModelCard) -> str | None:
    """Why the figures read through the judge may mean nothing: its validation AUC gives no
    evidence that it beats chance (``card.at_chance``); None when it does."""
    if not card.at_chance:
        return None
    bounds = (f"[{card.val_auc_low:.3f}, {card.val_auc_high:.3f}]" if card.val_auc_low is not None
              else "with no interval recorded")
    return (f"evaluate-synthetic: warning: the judge {judge} has validation AUC {card.val_auc:.3f} "
            f"{bounds}, no evidence that it beats chance: "
            "every metric computed through it (FID/KID/PRC in its feature space, class fidelity, "
            "nearest neighbours) is flagged judge.at_chance in metrics/synthetic.json")


@dataclass(frozen=True)
class SyntheticEvaluation:
    """What ``evaluate_synthetic`` found: ``report`` (JSON-ready, ``metrics/synthetic.json``),
    ``pictures`` (file name → (H, W) uint8 grid, for ``reports/synthetic/``) and ``warnings``
    (lines for stderr: probes skipped, a judge at chance)."""

    report: dict
    pictures: dict[str, np.ndarray]
    warnings: list[str]


def evaluate_synthetic(config: Config) -> SyntheticEvaluation:
    """Measure the synthetic set: the report, its grids and the warnings (see the module docstring)."""
    start, cfg = time.perf_counter(), config.synthetic_eval
    sets, rows, controls, sources = _load(config)
    synthetic = sets["synthetic"]
    judge = real_classifier(config)
    space = FeatureSpace.classifier(judge)
    features = {key: space(images.images) for key, images in sets.items()}
    card = ModelCard.from_json((judge / CARD).read_text())
    report = {"images": len(synthetic), "classifier": str(judge),
              "judge": {"val_auc": card.val_auc, "at_chance": card.at_chance,
                        **({"val_auc_low": card.val_auc_low, "val_auc_high": card.val_auc_high}
                           if card.val_auc_low is not None else {})},
              "realism": realism(features, sets, cfg),
              "control_fidelity": {**control_fidelity(synthetic.images, controls, synthetic.labels, config),
                                   "reference_real_val": real_control_fidelity(config, sets["val"])},
              "lesion_placement": lesion_placement(config, sets, rows),
              "class_fidelity": class_fidelity(Predictor.from_folder(judge), synthetic, sets["val"])}
    report["memorisation"], nearest = memorisation(features, sets, cfg)
    report["shortcut_probe"], warnings = shortcut_probe(config)
    if cfg.separability_epochs:
        report["separability"] = real_vs_synthetic(config, sets, rows)
    pictures = class_grids(synthetic, controls, sources, cfg.grid_rows)
    pictures["closest-pairs.png"] = closest_pairs(synthetic, sets["train"], nearest, cfg.closest_pairs)
    if warning := judge_warning(judge, card):
        warnings.append(warning)
    report["seconds"] = time.perf_counter() - start
    return SyntheticEvaluation(report, pictures, warnings)
