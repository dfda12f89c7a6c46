"""The two back ends behind one interface: where the diffusion runs and what conditions it.

``pixel`` diffuses the 1-channel image itself with a UNet trained from scratch and a learned class
table. ``latent`` diffuses a pretrained VAE's latents with a pretrained UNet (optionally LoRA
fine-tuned) and fills the class table once from the text encoder's embedding of each class prompt.
Both give a ``Backend``; the training and sampling loops see only that.

A base model folder (``models/base``) holds::

    backend.json          {"backend", "pretrained", "lora", "classes"}
    class_embedding/      ClassEmbedding (save_pretrained, safetensors)
    scheduler/            the training noise scheduler's config
    unet/                 pixel: the whole UNet
    unet_lora/            latent with lora_rank > 0: the LoRA adapter (``load_lora_adapter`` reads it)
    latents.safetensors   the training split encoded once (see ``diffusion/data.py``)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from controlbreast.config import Config
from controlbreast.diffusion.config import LatentModelConfig
from controlbreast.diffusion.models import ClassEmbedding, noise_scheduler, pixel_unet
from controlbreast.errors import ConfigError, MissingInputError, ModelError

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


class PixelCodec:
    """The identity: the pixel back end diffuses images in [-1, 1] directly."""

    scale = 1

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, sample: torch.Tensor) -> torch.Tensor:
        return sample


class VaeCodec:
    """1-channel images (N, 1, H, W) in [-1, 1] ↔ VAE latents (N, c, H/8, W/8), scaled as in training.

    Grayscale is repeated to the VAE's three channels; decoding averages them back.
    """

    def __init__(self, vae: AutoencoderKL):
        self.vae = vae.eval().requires_grad_(False)
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        rgb = images.repeat(1, self.vae.config.in_channels, 1, 1).to(self.vae.dtype)
        return self.vae.encode(rgb).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, sample: torch.Tensor) -> torch.Tensor:
        rgb = self.vae.decode(sample.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return rgb.float().mean(dim=1, keepdim=True)


@dataclass
class Backend:
    """A back end's parts; ``lora`` says whether the UNet carries a trainable LoRA adapter."""

    name: str
    unet: UNet2DConditionModel
    class_embedding: ClassEmbedding
    codec: PixelCodec | VaeCodec
    scheduler: DDPMScheduler
    classes: tuple[str, ...]
    pretrained: str | None = None
    lora: bool = False

    def trainable_base(self) -> list[torch.nn.Parameter]:
        """What ``train_base`` optimises: the whole pixel model, or the latent UNet's LoRA."""
        if self.name == "pixel":
            return [*self.unet.parameters(), *self.class_embedding.parameters()]
        return [p for p in self.unet.parameters() if p.requires_grad]


def _pretrained_part(cls, source: str, subfolder: str):
    try:
        return cls.from_pretrained(source, subfolder=subfolder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise MissingInputError(
            f"diffusion.latent.pretrained={source!r}: no local {subfolder}/ ({error}). controlbreast "
            "never downloads: give a local diffusers folder or a repo id already in your Hugging Face "
            "cache") from None


@torch.no_grad()
def prompt_table(cfg: LatentModelConfig, classes: tuple[str, ...]) -> ClassEmbedding:
    """The class table of the latent back end: each class prompt through the text encoder, once."""
    from transformers import AutoTokenizer, CLIPTextModel

    missing = [name for name in classes if name not in cfg.prompts]
    if missing:
        raise ConfigError(f"diffusion.latent.prompts has no prompt for classes {missing}")
    tokenizer = _pretrained_part(AutoTokenizer, cfg.pretrained, "tokenizer")
    encoder = _pretrained_part(CLIPTextModel, cfg.pretrained, "text_encoder").eval()
    prompts = [cfg.prompts[name] for name in classes] + [""]
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                       truncation=True, return_tensors="pt")
    hidden = encoder(tokens.input_ids)[0]
    table = ClassEmbedding(num_classes=len(classes), dim=hidden.shape[-1], tokens=hidden.shape[1])
    table.table.data.copy_(hidden)
    return table.requires_grad_(False)


def _add_lora(unet: UNet2DConditionModel, rank: int) -> None:
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=list(LORA_TARGETS)))


def new_backend(config: Config) -> Backend:
    """A back end ready for ``train_base``: a fresh pixel model, or the pretrained latent one."""
    cfg, classes = config.diffusion, config.data.classes
    if cfg.backend == "pixel":
        unet = pixel_unet(cfg.pixel, config.data.image_size)
        table = ClassEmbedding(num_classes=len(classes), dim=cfg.pixel.cross_attention_dim)
        return Backend("pixel", unet, table, PixelCodec(), noise_scheduler(cfg), classes)
    if cfg.latent.pretrained is None:
        raise ConfigError("diffusion.backend 'latent' needs diffusion.latent.pretrained (a local folder)")
    unet = _pretrained_part(UNet2DConditionModel, cfg.latent.pretrained, "unet")
    if cfg.latent.lora_rank:
        _add_lora(unet, cfg.latent.lora_rank)
    else:
        unet.requires_grad_(False)
    return Backend("latent", unet, prompt_table(cfg.latent, classes),
                   VaeCodec(_pretrained_part(AutoencoderKL, cfg.latent.pretrained, "vae")),
                   _pretrained_part(DDPMScheduler, cfg.latent.pretrained, "scheduler"), classes,
                   pretrained=cfg.latent.pretrained, lora=bool(cfg.latent.lora_rank))


def save_unet(backend: Backend, folder: Path) -> None:
    """The base's trained UNet part: the whole pixel UNet or the latent UNet's LoRA adapter."""
    if backend.name == "pixel":
        backend.unet.save_pretrained(folder / "unet")
    elif backend.lora:
        backend.unet.save_lora_adapter(folder / "unet_lora")


def load_unet_weights(backend: Backend, folder: Path) -> None:
    """Load what ``save_unet`` wrote into the backend's existing UNet (resume, or a saved base)."""
    from safetensors.torch import load_file

    if backend.name == "pixel":
        backend.unet.load_state_dict(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    elif backend.lora:
        from peft import set_peft_model_state_dict

        state = load_file(folder / "unet_lora" / LORA_WEIGHTS)
        set_peft_model_state_dict(backend.unet, state, adapter_name="default")


def save_base(backend: Backend, folder: Path) -> None:
    """Write the base model folder described in the module docstring (not the latents)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"backend": backend.name, "pretrained": backend.pretrained, "lora": backend.lora,
            "classes": list(backend.classes)}
    (folder / "backend.json").write_text(json.dumps(meta, indent=2) + "\n")
    backend.class_embedding.save_pretrained(folder / "class_embedding")
    backend.scheduler.save_pretrained(folder / "scheduler")
    save_unet(backend, folder)


def load_base(folder: Path, config: Config) -> Backend:
    """The trained base back, frozen (a LoRA adapter merged in); its classes must be the configured ones."""
    folder = Path(folder)
    if not (folder / "backend.json").is_file():
        raise MissingInputError(f"{folder}: no base model (run train_base first)")
    meta = json.loads((folder / "backend.json").read_text())
    if tuple(meta["classes"]) != tuple(config.data.classes):
        raise ModelError(f"{folder}: trained on classes {meta['classes']}, params has "
                         f"{list(config.data.classes)}; retrain the base")
    table = ClassEmbedding.from_pretrained(folder / "class_embedding")
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    classes = tuple(meta["classes"])
    if meta["backend"] == "pixel":
        unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        backend = Backend("pixel", unet, table, PixelCodec(), scheduler, classes)
    else:
        unet = _pretrained_part(UNet2DConditionModel, meta["pretrained"], "unet")
        if meta["lora"]:  # merged into the weights: a plain UNet that from_unet can copy
            unet.load_lora_adapter(folder / "unet_lora", prefix=None, weight_name=LORA_WEIGHTS,
                                   local_files_only=True)
            unet.fuse_lora()
            unet.unload_lora()
        vae = _pretrained_part(AutoencoderKL, meta["pretrained"], "vae")
        backend = Backend("latent", unet, table, VaeCodec(vae), scheduler, classes,
                          pretrained=meta["pretrained"], lora=meta["lora"])
    backend.unet.requires_grad_(False)
    backend.class_embedding.requires_grad_(False)
    return backend


def sample_shape(backend: Backend, image_size: int) -> tuple[int, int, int]:
    """(c, h, w) of the diffusion's samples: the image's for pixel, the latents' for latent."""
    side = image_size // backend.codec.scale
    return backend.unet.config.in_channels, side, side
