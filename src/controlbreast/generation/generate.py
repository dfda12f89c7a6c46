"""``generate``: labelled synthetic images, each conditioned on a varied training-split control.

Only training-split controls are ever chosen (``plan`` reads the prepared manifest's ``split``
column), so no synthetic image carries the layout of a validation or test image into training.
Every row of the manifest says how to make its image again alone: its class, control, variation,
seed, sampler settings, ``strength`` (below 1: real-guided, started from the control's own real
training image, varied alike and noised) and the hash of the models that drew it (``regenerate``);
sampling is per-image seeded and batch-independent.

Output (``paths.synthetic``), drawn chunk by chunk into staging beside it (resumable, shardable:
``staging.py``) and swapped in when complete::

    images/<id>.png              (S, S) uint8 grayscale synthetic image
    controls/<channel>/<id>.png  the varied control that conditioned it (fidelity is measured on it)
    manifest.csv                 SyntheticRow (data/manifest.py)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel
from tqdm import tqdm

from controlbreast.config import Config
from controlbreast.data.datasets import load_controls, read_images
from controlbreast.data.imageio import encode_png
from controlbreast.data.manifest import PreparedRow, SyntheticRow, manifest_bytes, read_manifest
from controlbreast.data.subsets import training_subsets
from controlbreast.diffusion.backends import Backend, VaeCodec, load_base, sample_shape
from controlbreast.diffusion.config import SamplingConfig
from controlbreast.diffusion.data import to_uint8, to_unit
from controlbreast.diffusion.models import Denoiser
from controlbreast.diffusion.sampling import generate
from controlbreast.digests import folder_digest
from controlbreast.errors import DataError, MissingInputError, ModelError
from controlbreast.generation.staging import (
    Shard,
    assemble,
    chunk_folder,
    chunk_rows,
    describe_stale,
    done_chunks,
    plan_digest,
    staging_folder,
    stale_staging,
    start_staging,
)
from controlbreast.generation.variation import Variation, apply_variation, draw_variation, vary_image
from controlbreast.mixing import generate_shortfall, synthetic_needed
from controlbreast.outputs import atomic_folder

SEED_STRIDE = 1_000_000
WHOLE = Shard(0, 1)


@dataclass
class Generator:
    """The trained base + ControlNet, ready to sample; ``model_hash`` identifies both folders."""

    denoiser: Denoiser
    backend: Backend
    channels: tuple[str, ...]
    shape: tuple[int, int, int]
    model_hash: str


def model_hash(models: Path) -> str:
    """One hash of ``models/base`` and ``models/controlnet`` (every file's path and bytes)."""
    digests = folder_digest(Path(models) / "base") + folder_digest(Path(models) / "controlnet")
    return hashlib.sha256(digests.encode()).hexdigest()[:16]


def sampling_device() -> torch.device:
    """This process's GPU (``LOCAL_RANK`` under ``accelerate launch``/``torchrun``) if there is one,
    else the CPU. Noise is drawn on the CPU from each image's seed either way."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def load_generator(config: Config) -> Generator:
    """Load ``models/base`` and ``models/controlnet``; their control channels must be the configured ones."""
    models = Path(config.paths.models)
    folder = models / "controlnet"
    if not (folder / "control.json").is_file():
        raise MissingInputError(f"{folder}: no trained ControlNet (run train_controlnet first)")
    channels = tuple(json.loads((folder / "control.json").read_text())["channels"])
    if channels != config.controls.channels:
        raise ModelError(f"{folder}: trained on controls {list(channels)}, params has controls.kind "
                         f"{config.controls.kind!r}; retrain the ControlNet")
    backend = load_base(models / "base", config)
    controlnet = ControlNetModel.from_pretrained(folder, local_files_only=True).eval()
    device = sampling_device()
    denoiser = Denoiser(backend.unet, backend.class_embedding, controlnet).eval().to(device)
    if isinstance(backend.codec, VaeCodec):
        backend.codec.vae.to(device)
    return Generator(denoiser, backend, channels, sample_shape(backend, config.data.image_size),
                     model_hash(models))


def sampling_columns(cfg: SamplingConfig, strength: float = 1.0) -> dict:
    return {"guidance_scale": cfg.guidance_scale, "controlnet_scale": cfg.controlnet_scale,
            "control_guidance": cfg.control_guidance, "control_null": cfg.control_null, "steps": cfg.steps,
            "scheduler": cfg.scheduler, "strength": strength}


def row_sampling(row: dict, batch_size: int = 1) -> SamplingConfig:
    """The sampler settings a manifest row was drawn with."""
    return SamplingConfig(scheduler=row["scheduler"], steps=int(row["steps"]),
                          guidance_scale=float(row["guidance_scale"]),
                          controlnet_scale=float(row["controlnet_scale"]),
                          control_guidance=float(row.get("control_guidance", 1.0)),
                          control_null=row.get("control_null", "base"), batch_size=batch_size)


def training_rows(prepared: Path) -> list[PreparedRow]:
    """The prepared manifest's training-split rows: the only images whose controls are used."""
    rows = read_manifest(Path(prepared) / "manifest.csv", PreparedRow)
    return [row for row in rows if row.split == "train"]


def images_to_make(config: Config, train: Sequence[PreparedRow]) -> dict[str, int]:
    """Images to make per class: ``generate.per_class``, or with ``auto`` what the classifier
    arms draw from the set, given the training rows of the prepared manifest."""
    per_class = config.generate.per_class
    if per_class == "auto":
        return synthetic_needed([row.label for row in train], config.data.classes,
                                config.classifier.mix_ratio)
    return dict.fromkeys(config.data.classes, per_class)


def shortfall(config: Config, train: Sequence[PreparedRow]) -> str | None:
    """``mixing.generate_shortfall`` of the training rows of the prepared manifest."""
    return generate_shortfall(config, Counter(row.label for row in train if row.label in config.data.classes))


def plan(config: Config, train: Sequence[PreparedRow]) -> list[dict]:
    """The rows of the set to make, without images: ``images_to_make`` per class, each with a
    control of its own class from ``train``, visited in a seeded order (all before any repeat)."""
    cfg, rows = config.generate, []
    if any(row.split != "train" for row in train):
        raise DataError("controls for synthetic images must come from the training split only")
    counts = images_to_make(config, train)
    for class_index, label in enumerate(config.data.classes):
        ids = sorted(row.id for row in train if row.label == label)
        if not ids:
            raise DataError(f"no training image of class {label!r} to take a control from")
        order = np.random.default_rng([cfg.seed, class_index]).permutation(len(ids))
        for k in range(counts[label]):
            index = len(rows)
            seed = cfg.seed * SEED_STRIDE + index
            rows.append({"id": f"syn-{index:06d}", "label": label, "control_id": ids[order[k % len(ids)]],
                         "control_split": "train", "seed": seed,
                         "variation": draw_variation(cfg.variation, seed).to_json(),
                         **sampling_columns(set_sampling(config), cfg.strength)})
    return rows


def guided_ratio(config: Config) -> float | None:
    """The largest synthetic:real ratio a ``synthetic: guided`` recipe draws at (its own
    ``mix_ratio`` or ``classifier.mix_ratio``); None when no recipe draws real-guided images."""
    settings = config.classifier
    ratios = [found.mix_ratio or settings.mix_ratio for found in settings.recipes.values()
              if found.synthetic == "guided"]
    return max(ratios) if ratios else None


def guided_rows(config: Config, train: Sequence[PreparedRow], rows: list[dict]) -> list[dict]:
    """The rows of the plain set's ``plan`` that the real-guided recipes can draw: what
    ``generate-guided`` makes again at ``generate.guided_strength``, the same controls, variations
    and seeds.

    Per class c, one row for each of the first ``ceil(ratio x n_c)`` controls (``guided_ratio``) in
    the order the nested fraction subsets take them (``data.subsets``: a smaller fraction's first),
    so every fraction f's subset holds at least the ``round(ratio x n_c(f))`` its arm draws (per
    class, and so pooled). A ratio above 1 repeats controls: every row is kept. No guided recipe:
    no row.
    """
    ratio = guided_ratio(config)
    if ratio is None:
        return []
    if ratio > 1.0:
        return rows
    first = {row_id: 1.0 for row_id in (row.id for row in train)}
    for fraction, ids in sorted(training_subsets(config).items(), reverse=True):
        first |= dict.fromkeys(ids, fraction)
    kept: list[dict] = []
    for label in config.data.classes:
        own: dict[str, dict] = {}
        for row in rows:  # each control's first row, in plan order
            if row["label"] == label:
                own.setdefault(row["control_id"], row)
        wanted = math.ceil(ratio * sum(row.label == label for row in train) - 1e-9)
        kept += [own[control] for control in sorted(own, key=first.__getitem__)[:wanted]]  # stable sort
    return sorted(kept, key=lambda row: row["id"])


def varied_controls(controls: Path, rows: Sequence[dict], channels: tuple[str, ...]) -> np.ndarray:
    """(N, C, H, W) uint8: each row's control, varied as its ``variation`` column says."""
    originals = load_controls(controls, [row["control_id"] for row in rows], channels)
    return np.stack([apply_variation(control, Variation.from_json(row["variation"]), channels)
                     for control, row in zip(originals, rows, strict=True)])


def source_images(prepared: Path, rows: Sequence[dict]) -> np.ndarray:
    """(N, 1, H, W) uint8: the real training image of each row's control, varied as the control was
    (where real-guided generation starts)."""
    images = read_images(Path(prepared) / "images", [row["control_id"] for row in rows])
    return np.stack([vary_image(image, Variation.from_json(row["variation"]))[None]
                     for image, row in zip(images, rows, strict=True)])


def row_strength(rows: Sequence[dict]) -> float:
    """The one ``strength`` of a batch of rows (1 for rows written before it existed)."""
    found = {float(row.get("strength", 1.0)) for row in rows}
    if len(found) != 1:
        raise DataError(f"rows {rows[0]['id']}..{rows[-1]['id']} mix strengths {sorted(found)} in one batch")
    return found.pop()


def render(generator: Generator, rows: Sequence[dict], controls: np.ndarray, sampling: SamplingConfig,
           progress: bool = False, sources: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) uint8 synthetic images of ``rows`` conditioned on ``controls`` (N, C, H, W) uint8;
    with the rows' ``strength`` below 1, started from ``sources`` (``source_images``)."""
    classes = generator.backend.classes
    labels = torch.tensor([classes.index(row["label"]) for row in rows], dtype=torch.long)
    seeds = [int(row["seed"]) for row in rows]
    strength = row_strength(rows)
    if strength < 1.0 and sources is None:
        raise ValueError("real-guided rows (strength < 1) need their source images")
    init = None if strength >= 1.0 else to_unit(sources)
    samples = generate(generator.denoiser, generator.backend.codec, generator.backend.scheduler, labels,
                       seeds, generator.shape, sampling, to_unit(controls), progress=progress, init=init,
                       strength=strength)
    return to_uint8(samples)


def draw_rows(config: Config, generator: Generator, rows: Sequence[dict], sampling: SamplingConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, H, W) uint8 of ``rows`` and the varied controls (N, C, H, W) that conditioned them."""
    controls = varied_controls(config.paths.controls, rows, generator.channels)
    sources = source_images(config.paths.prepared, rows) if row_strength(rows) < 1.0 else None
    return render(generator, rows, controls, sampling, sources=sources), controls


def write_set(destination: Path, rows: Sequence[dict], images: np.ndarray, controls: np.ndarray,
              channels: tuple[str, ...]) -> None:
    """Write the set's folder (module docstring) atomically."""
    with atomic_folder(destination) as build:
        for name in ("images", *(f"controls/{c}" for c in channels)):
            (build / name).mkdir(parents=True)
        for row, image, control in zip(rows, images, controls, strict=True):
            (build / "images" / f"{row['id']}.png").write_bytes(encode_png(image))
            for channel, plane in zip(channels, control, strict=True):
                (build / "controls" / channel / f"{row['id']}.png").write_bytes(encode_png(plane))
        (build / "manifest.csv").write_bytes(manifest_bytes(rows, SyntheticRow))


def guided_config(config: Config) -> Config | None:
    """The settings that draw the real-guided set: the plain set's rows at
    ``generate.guided_strength``, into ``paths.synthetic_guided``; None when that strength is null."""
    strength = config.generate.guided_strength
    if strength is None:
        return None
    return config.model_copy(update={
        "generate": config.generate.model_copy(update={"strength": strength}),
        "paths": config.paths.model_copy(update={"synthetic": config.paths.synthetic_guided})})


def write_empty_set(destination: Path, channels: tuple[str, ...]) -> None:
    """An empty set (its manifest's header alone): what a stage whose set is switched off leaves, so
    the stages that read it find a folder that says "no image"."""
    write_set(destination, [], np.zeros((0, 1, 1), np.uint8), np.zeros((0, len(channels), 1, 1), np.uint8),
              channels)


def set_sampling(config: Config) -> SamplingConfig:
    """The sampler of the synthetic set: ``generate.sampling``, else the ``sampling`` section."""
    return config.generate.sampling or config.sampling


def generate_set(config: Config, progress: bool = True, shard: Shard = WHOLE,
                 subset: frozenset[str] | None = None, guided: bool = False) -> dict:
    """Draw ``shard``'s chunks of the configured set into staging, and swap the set into
    ``paths.synthetic`` if that completed it (``staging.py``); returns counts and timings. Controls
    (and, with ``auto``, the counts per class) come from the training rows, only those in
    ``subset`` when given; ``guided``: only the rows the real-guided recipes draw (``guided_rows``).

    Memory holds one chunk (one sampling batch) at a time, whatever the set's size.
    """
    start = time.perf_counter()
    train = [row for row in training_rows(config.paths.prepared) if subset is None or row.id in subset]
    generator = load_generator(config)
    rows = plan(config, train)
    rows = [{**row, "model_hash": generator.model_hash} for row in (guided_rows(config, train, rows) if guided
                                                                    else rows)]
    sampling, destination = set_sampling(config), Path(config.paths.synthetic)
    digest = plan_digest(rows, generator.channels, sampling.batch_size)
    staging = staging_folder(destination, digest)
    stale = stale_staging(destination, digest)
    if stale:
        print(describe_stale(stale), file=sys.stderr)
    start_staging(staging, rows)
    chunks = chunk_rows(rows, sampling.batch_size)
    todo = [k for k in shard.chunks(len(chunks)) if k not in done_chunks(staging, len(chunks))]
    sampling_seconds = _draw_chunks(config, generator, staging, chunks, todo, progress)
    assembled = assemble(destination, staging, rows, generator.channels, sampling.batch_size)
    drawn = sum(len(chunks[k]) for k in todo)
    made = Counter(row["label"] for row in rows)
    return {"images": len(rows), **{f"images_{c}": made[c] for c in config.data.classes},
            "controls_used": len({row["control_id"] for row in rows}), "images_drawn": drawn,
            "chunks_drawn": todo, "chunks": len(chunks), "assembled": int(assembled),
            "staging": str(staging), "sampling_seconds": sampling_seconds,
            "seconds": time.perf_counter() - start,
            "images_per_second": drawn / max(sampling_seconds, 1e-9)}


def _draw_chunks(config: Config, generator: Generator, staging: Path, chunks: Sequence[Sequence[dict]],
                 todo: Sequence[int], progress: bool) -> float:
    """Draw and write the chunks ``todo``; the bar counts every shard's finished images, so its
    rate and ETA are those of all shards together. Returns seconds spent sampling."""
    sizes, seconds = [len(chunk) for chunk in chunks], 0.0

    def finished() -> int:
        return sum(sizes[k] for k in done_chunks(staging, len(chunks)))

    with tqdm(total=sum(sizes), initial=finished(), desc="generate", unit="image",
              disable=not progress, smoothing=0.1) as bar:
        for k in todo:
            began = time.perf_counter()
            images, controls = draw_rows(config, generator, chunks[k], set_sampling(config))
            seconds += time.perf_counter() - began
            write_set(chunk_folder(staging, k), chunks[k], images, controls, generator.channels)
            bar.update(finished() - bar.n)
    return seconds


def regenerate(config: Config, row: dict, generator: Generator | None = None) -> np.ndarray:
    """(H, W) uint8: one synthetic image made again from its manifest row alone.

    The row's models must be the current ones (same ``model_hash``); its sampler settings, seed,
    control and variation are taken from the row, not from params.
    """
    generator = generator or load_generator(config)
    if row["model_hash"] != generator.model_hash:
        raise ModelError(f"{row['id']} was drawn by models {row['model_hash']}, the current models are "
                         f"{generator.model_hash}; it cannot be regenerated identically")
    return draw_rows(config, generator, [row], row_sampling(row))[0][0]
