"""Whole films against lesion-centred patches on the mammography phantom: test AUCs side by side.

Ingests the phantom mammography mode twice (``profiles/mammo-cpu.yaml``; once with patches off, so
each film is squeezed whole to ``data.image_size``), trains the real-only classifier on each (one
seed, ``--epochs``) and prints the test AUC of malignant against the rest: per film for whole films;
for patches per patch, per film over the film's ingest patches (highest malignant probability; its
lesion patches were centred with the mask, so this knows where to look) and per film over tiles
covering the whole breast (``_tiled``: the fair film-level number, no mask used); plus the ingest
and training seconds. Everything but the data is params.yaml as committed.

Run: ``python benchmarks/mammo_patches.py --out /tmp/mammo [--patients 80] [--epochs 8]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from controlbreast.classify.scores import auc
from controlbreast.classify.train import train_classifier
from controlbreast.classify.transforms import normalise, scale
from controlbreast.config import Config, parse_config
from controlbreast.data.datasets import load_image_set
from controlbreast.data.imageio import to_uint8
from controlbreast.data.ingest import run_ingest
from controlbreast.data.mammo import breast_region, orient
from controlbreast.data.manifest import PreparedRow, read_manifest
from controlbreast.data.patches import PatchBox, cut
from controlbreast.data.phantom_mammo import mammo_phantom_candidates
from controlbreast.data.preprocess import fit_to_square
from controlbreast.data.records import RawSample
from controlbreast.overlay import deep_merge

REPO = Path(__file__).resolve().parents[1]


def config_for(out: Path, patches: bool, patients: int, epochs: int) -> Config:
    raw = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                     yaml.safe_load((REPO / "profiles" / "mammo-cpu.yaml").read_text()))
    paths = {name: str(out / name) for name in ("prepared", "controls", "metrics", "mlruns", "models",
                                                 "checkpoints", "classifiers", "synthetic", "reports")}
    raw = deep_merge(raw, {"paths": paths, "data": {"patches": {"enabled": patches}},
                           "phantom": {"patients_per_class": patients},
                           "classifier": {"epochs": epochs, "seeds": [0]}})
    return parse_config(raw, "benchmark")


def test_scores(config: Config, model: torch.nn.Module, card) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Malignant probability (n,), malignant truth (n,) and source film of every test row."""
    classes = config.data.classes
    test = load_image_set(config.paths.prepared, classes, splits=("test",)).split("test")
    rows = {r.id: r for r in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)}
    with torch.no_grad():
        probs = torch.softmax(model(normalise(scale(test.images), card)), -1).numpy()
    positive = classes.index("malignant")
    return probs[:, positive], test.labels == positive, [rows[i].source_image for i in test.ids]


def per_film(scores: np.ndarray, truth: np.ndarray, films: list[str]) -> float:
    """AUC of the highest score of each film's rows against whether any of its rows is positive."""
    names = sorted(set(films))
    best = {name: -1.0 for name in names}
    hit = dict.fromkeys(names, False)
    for score, positive, film in zip(scores, truth, films, strict=True):
        best[film], hit[film] = max(best[film], float(score)), hit[film] or bool(positive)
    return float(auc(np.array([best[n] for n in names]), np.array([hit[n] for n in names])))


def tiles(config: Config, raw: RawSample, side: int) -> np.ndarray:
    """(T, S, S) uint8 patches tiling a film's breast crop with half-patch steps: what a patch
    model sees of a film whose lesions are not known (S = ``data.image_size``)."""
    image, _, _ = orient(raw.image, None, raw.bit_depth, config.data.mammography)
    breast = breast_region(image, raw.bit_depth, config.data.mammography)
    step, size = max(1, side // 2), config.data.image_size
    out = []
    for top in range(-step, image.shape[0] - step, step):
        for left in range(-step, image.shape[1] - step, step):
            box = PatchBox("tile", 0, top, left, side)
            if cut(breast, box).mean() > 0.5:
                out.append(to_uint8(fit_to_square(cut(image, box), size, "pad"), raw.bit_depth)[0])
    return np.stack(out)


def sliding_film_auc(config: Config, model: torch.nn.Module, card) -> float:
    """Film-level AUC of a patch model that does not know where the lesions are: the highest
    malignant probability over tiles covering each test film's breast."""
    rows = [r for r in read_manifest(Path(config.paths.prepared) / "manifest.csv", PreparedRow)
            if r.split == "test"]
    films = {r.source_path: r for r in rows}
    loads = {c.source_path: c.load for c in mammo_phantom_candidates(config.phantom)}
    positive = config.data.classes.index("malignant")
    scores, truth = [], []
    for path, row in sorted(films.items()):
        raw = loads[path]()
        with torch.no_grad():
            probs = torch.softmax(model(normalise(scale(tiles(config, raw, row.patch_side)), card)), -1)
        scores.append(float(probs[:, positive].max()))
        truth.append(row.source_label == "malignant" or any(
            r.label == "malignant" for r in rows if r.source_path == path))
    return float(auc(np.array(scores), np.array(truth)))


def run(out: Path, patches: bool, patients: int, epochs: int) -> dict:
    config = config_for(out / ("patches" if patches else "whole"), patches, patients, epochs)
    start = time.perf_counter()
    rows = run_ingest(config).rows
    ingest_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = train_classifier(config, "real", 0)
    train_seconds = time.perf_counter() - start
    scores, truth, films = test_scores(config, result.model, result.card)
    return {"rows": len(rows), "films": len({r["source_image"] for r in rows}),
            "ingest_seconds": round(ingest_seconds, 1), "train_seconds": round(train_seconds, 1),
            "val_auc_macro": round(result.card.val_auc, 3),
            "test_auc_malignant_per_row": round(float(auc(scores, truth)), 3),
            "test_auc_malignant_per_film": round(float(per_film(scores, truth, films)), 3),
            **({"test_auc_malignant_per_film_tiled": round(sliding_film_auc(config, result.model,
                                                                             result.card), 3)}
               if patches else {}),
            "test_rows": len(scores), "test_films": len(set(films))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    results = {mode: run(args.out, mode == "patches", args.patients, args.epochs)
               for mode in ("whole", "patches")}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
