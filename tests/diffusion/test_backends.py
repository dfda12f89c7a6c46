"""The latent back end: a tiny Stable-Diffusion-layout folder built from config, trained offline."""

import json

import pytest
import torch
from diffusers import ControlNetModel

from builders import tiny_config, write_tiny_sd
from controlbreast.diffusion import pipeline
from controlbreast.diffusion.backends import load_base
from controlbreast.diffusion.data import load_latents
from controlbreast.diffusion.models import Denoiser
from controlbreast.diffusion.sampling import generate
from controlbreast.errors import ControlBreastError


@pytest.fixture(scope="module")
def latent(prepared, tmp_path_factory):
    """Base (LoRA) and ControlNet stages of the latent back end, 3 steps each, on 32 px images."""
    root = tmp_path_factory.mktemp("latent")
    folder = write_tiny_sd(root / "tiny-sd")
    train = {"steps": 3, "checkpoint_every": 3, "validate_every": 3, "num_validation": 3}
    prompts = {name: f"a breast ultrasound image of {name} tissue"
               for name in ("normal", "benign", "malignant")}
    latent = {"pretrained": str(folder), "lora_rank": 4, "prompts": prompts}
    config = tiny_config(root, prepared, diffusion={"backend": "latent", "latent": latent},
                         train_base=train, train_controlnet=train)
    return config, pipeline.train_base(config), pipeline.train_controlnet(config)


def test_latent_base_trains_only_a_lora_adapter_and_caches_latents(latent):
    config, base_summary, _ = latent
    folder = config.paths.models / "base"
    meta = json.loads((folder / "backend.json").read_text())
    assert meta["backend"] == "latent" and meta["lora"]
    assert (folder / "unet_lora" / "pytorch_lora_weights.safetensors").is_file()
    assert not (folder / "unet").exists()  # the pretrained UNet stays where the user keeps it
    ids, latents, labels = load_latents(folder / pipeline.LATENTS)
    assert latents.shape[1:] == (4, 16, 16)  # 32 px images through a VAE that halves once
    assert len(ids) == len(labels) == len(latents)
    assert base_summary["steps"] == 3


def test_latent_controlnet_loads_and_samples_images_of_the_image_size(latent):
    config, _, summary = latent
    assert {"control_f1", "control_f1_shuffled"} <= set(summary)
    controlnet = ControlNetModel.from_pretrained(config.paths.models / "controlnet")
    # the SD control encoder trimmed to one halving: the control has the image's size, 2x the latent's
    assert list(controlnet.config.conditioning_embedding_out_channels) == [16, 32]
    backend = load_base(config.paths.models / "base", config)
    denoiser = Denoiser(backend.unet, backend.class_embedding, controlnet)
    controls = torch.rand(2, 1, 32, 32)
    images = generate(denoiser, backend.codec, backend.scheduler, torch.tensor([0, 2]), [5, 6],
                      pipeline.sample_shape(backend, 32), config.sampling, controls)
    assert images.shape == (2, 1, 32, 32)
    assert images.min() >= 0 and images.max() <= 1
    again = generate(denoiser, backend.codec, backend.scheduler, torch.tensor([2]), [6],
                     pipeline.sample_shape(backend, 32), config.sampling, controls[1:])
    assert torch.allclose(again[0], images[1], atol=1e-5)  # an image regenerates alone from its seed


def test_missing_pretrained_folder_is_a_clear_error_not_a_download(prepared, tmp_path):
    config = tiny_config(tmp_path, prepared, diffusion={
        "backend": "latent", "latent": {"pretrained": str(tmp_path / "nowhere")}})
    with pytest.raises(ControlBreastError, match="never downloads"):
        pipeline.train_base(config)
