"""The two training stages: ``train_base`` (the class-conditional model) and ``train_controlnet``.

Both read the training split only, train with ``diffusion/train.py``, and swap their final model
folder into place only when it is complete (``models/base``, ``models/controlnet``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel
from safetensors.torch import load_file

from controlbreast.config import Config
from controlbreast.data.datasets import ImageSet, load_controls, load_image_set
from controlbreast.diffusion.backends import (
    Backend,
    load_base,
    load_unet_weights,
    new_backend,
    sample_shape,
    save_base,
    save_unet,
)
from controlbreast.diffusion.checkpoints import run_folder
from controlbreast.diffusion.config import TrainConfig
from controlbreast.diffusion.data import (
    TrainingSet,
    encode_images,
    load_latents,
    save_latents,
    to_unit,
)
from controlbreast.diffusion.models import Denoiser, controlnet_from_unet
from controlbreast.diffusion.train import DiffusionTrainResult, Trainee, train
from controlbreast.diffusion.validation import Validation
from controlbreast.digests import array_digest, folder_digest
from controlbreast.distributed import is_main_process
from controlbreast.outputs import atomic_folder

LATENTS = "latents.safetensors"
WEIGHTS = "diffusion_pytorch_model.safetensors"
SD_CONTROL_ENCODER = (16, 32, 96, 256)


RESUME_NEUTRAL = {"steps", "checkpoint_every", "keep_checkpoints", "validate_every", "num_validation",
                  "log_every", "divergence_factor", "threads"}


def fingerprint(stage: str, *parts: object) -> tuple[str, dict]:
    """The configuration a checkpoint belongs to: a hash of ``parts`` (config sections, data digests,
    the starting model's digest) and the description stored beside it (``run.json``).

    Not the source code's bytes: a comment edit must not orphan a long run's progress (a resume
    across a code change is reported instead, see ``code_digest``).
    """
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return digest, {"stage": stage, "fingerprint": digest, "parts": parts}


def resume_key(train: TrainConfig) -> dict:
    """The training section without the knobs that do not change what a step computes: raising
    ``steps`` continues a run, changing how often it checkpoints or validates does not restart it."""
    return {k: v for k, v in train.model_dump(mode="json").items() if k not in RESUME_NEUTRAL}


def code_digest() -> str:
    """A digest of the diffusion code, stored in each checkpoint (reported on resume, not keyed on)."""
    return folder_digest(Path(__file__).parent, "*.py")


def validation_examples(images: ImageSet, count: int) -> ImageSet:
    """``count`` validation images taking the classes in turn, so every class is shown."""
    by_class = [np.flatnonzero(images.labels == c) for c in range(len(images.classes))]
    order = [index for rank in range(len(images)) for members in by_class
             for index in members[rank:rank + 1]]
    return images.subset(order[:count])


def _validation(config: Config, backend: Backend, val: ImageSet, controls: np.ndarray | None) -> Validation:
    return Validation(backend.codec, backend.scheduler, config.sampling,
                      sample_shape(backend, config.data.image_size), val.images, val.labels, controls,
                      config.controls.channels, config.controls, seed=config.seed)


def _checkpoint_folder(config: Config, stage: str, *parts: object) -> Path:
    """This configuration's checkpoint folder, created (with ``run.json``) by the main process only."""
    stamp, description = fingerprint(stage, config.seed, *parts)
    root = Path(config.paths.checkpoints) / stage
    return run_folder(root, stamp, description) if is_main_process() else root / stamp


def _publish(destination: Path, write: Callable[[Path], None]) -> None:
    """``write`` the finished model into a build folder swapped in at ``destination`` (main process
    only: under a multi-process launch the others hold the same weights and write nothing)."""
    if is_main_process():
        with atomic_folder(destination) as build:
            write(build)


def _summary(result: DiffusionTrainResult, validation: Validation) -> dict:
    last = validation.history[-1] if validation.history else {}
    return {"steps": result.steps, "resumed_from": result.start_step,
            "resumed_across_code_change": result.resumed_across_code_change, "final_loss": result.loss,
            "train_seconds": result.seconds, "samples_per_second": result.samples_per_second,
            "peak_memory_mb": result.peak_memory_mb, "processes": result.processes,
            **{k: v for k, v in last.items() if k != "step"}}


def _base_trainee(backend: Backend) -> Trainee:
    def save_parts(folder: Path) -> None:
        save_unet(backend, folder)
        backend.class_embedding.save_pretrained(folder / "class_embedding")

    def load_parts(folder: Path) -> None:
        load_unet_weights(backend, folder)
        backend.class_embedding.load_state_dict(load_file(folder / "class_embedding" / WEIGHTS))

    return Trainee(Denoiser(backend.unet, backend.class_embedding), backend.trainable_base(),
                   save_parts, load_parts, use_control=False)


def train_base(config: Config, resume: bool = False, subset: frozenset[str] | None = None) -> dict:
    """Train the class-conditional base model on the training split (only its ids in ``subset``
    when given: a fraction's own generator); write ``models/base`` with the encoded images it saw,
    which is all ``train_controlnet`` then trains on."""
    prepared = load_image_set(config.paths.prepared, config.data.classes, ("train", "val"))
    trainset, val = prepared.split("train"), prepared.split("val")
    if subset is not None:
        trainset = trainset.subset([k for k, image_id in enumerate(trainset.ids) if image_id in subset])
    torch.manual_seed(config.seed)
    backend = new_backend(config)
    latents = encode_images(backend.codec, trainset.images)
    data = TrainingSet(trainset.ids, latents, torch.from_numpy(trainset.labels), controls=None)
    trainee = _base_trainee(backend)
    validation = _validation(config, backend, validation_examples(val, config.train_base.num_validation),
                             None)
    data_digest = {"ids": trainset.ids, "images": array_digest(trainset.images),
                   "labels": array_digest(trainset.labels)}
    folder = _checkpoint_folder(config, "train_base", config.diffusion.model_dump(mode="json"),
                                resume_key(config.train_base), data_digest)
    result = train(trainee, data, backend.scheduler, config.train_base, config.diffusion,
                   stage="train_base", seed=config.seed, checkpoint_folder=folder, code=code_digest(),
                   resume=resume, validate=validation)
    def write(build: Path) -> None:
        save_base(backend, build)
        save_latents(build / LATENTS, trainset, latents)

    _publish(Path(config.paths.models) / "base", write)
    return _summary(result, validation)


def new_controlnet(config: Config, backend: Backend) -> ControlNetModel:
    """The ControlNet to train: a local pretrained one (latent), or a copy of the base UNet's encoder."""
    channels = len(config.controls.channels)
    if backend.name == "latent" and config.diffusion.latent.controlnet:
        return ControlNetModel.from_pretrained(config.diffusion.latent.controlnet, local_files_only=True)
    if backend.name == "latent":  # Stable Diffusion's encoder, one stage per halving down to the latents
        embedding = SD_CONTROL_ENCODER[:backend.codec.scale.bit_length()]
    else:
        embedding = (config.diffusion.pixel.control_embedding_channels,)
    return controlnet_from_unet(backend.unet, channels, tuple(embedding))


def _controlnet_trainee(backend: Backend, controlnet: ControlNetModel) -> Trainee:
    def load_parts(folder: Path) -> None:
        controlnet.load_state_dict(load_file(folder / "controlnet" / WEIGHTS))

    return Trainee(Denoiser(backend.unet, backend.class_embedding, controlnet),
                   list(controlnet.parameters()),
                   lambda folder: controlnet.save_pretrained(folder / "controlnet"), load_parts,
                   use_control=True)


def _frozen_dtype(mixed_precision: str) -> torch.dtype:
    """The reference trains the ControlNet in fp32 with the frozen UNet in the mixed dtype."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def train_controlnet(config: Config, resume: bool = False) -> dict:
    """Train a ControlNet on the frozen base with training-split controls; write ``models/controlnet``."""
    base = Path(config.paths.models) / "base"
    backend = load_base(base, config)
    ids, latents, labels = load_latents(base / LATENTS)
    channels = config.controls.channels
    data = TrainingSet(ids, latents, labels, to_unit(load_controls(config.paths.controls, ids, channels)))
    torch.manual_seed(config.seed)
    controlnet = new_controlnet(config, backend)
    frozen_dtype = _frozen_dtype(config.train_controlnet.mixed_precision)
    if frozen_dtype != torch.float32:
        backend.unet.to(frozen_dtype)
    val = validation_examples(load_image_set(config.paths.prepared, config.data.classes, ("val",)),
                              config.train_controlnet.num_validation)
    validation = _validation(config, backend, val, load_controls(config.paths.controls, val.ids, channels))
    folder = _checkpoint_folder(config, "train_controlnet", config.diffusion.model_dump(mode="json"),
                                resume_key(config.train_controlnet),
                                {"base": folder_digest(base),
                                 "controls": array_digest(data.controls.numpy())})
    result = train(_controlnet_trainee(backend, controlnet), data, backend.scheduler,
                   config.train_controlnet, config.diffusion, stage="train_controlnet", seed=config.seed,
                   checkpoint_folder=folder, code=code_digest(), resume=resume, validate=validation)
    def write(build: Path) -> None:
        controlnet.save_pretrained(build)
        (build / "control.json").write_text(json.dumps({"channels": list(channels)}) + "\n")

    _publish(Path(config.paths.models) / "controlnet", write)
    return _summary(result, validation)
