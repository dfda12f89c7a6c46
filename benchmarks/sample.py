"""Sampling speed: our loop (``diffusion/sampling.py: generate``) beside a reference written the way
diffusers' ``StableDiffusionControlNetPipeline.__call__`` runs a batch, same models, scheduler, steps,
guidance, batch and seeds, in one process. Prints images/s of each, the ratio (ours / reference;
above 1 means we are faster) and the largest pixel difference between their images.

What the reference does, as the pipeline does: the class context is looked up once (the pipeline
encodes the prompt once); the control is duplicated for guidance; every step concatenates the
latents twice when guidance > 1, scales them, runs the ControlNet on the raw control (its
conditioning encoder recomputed every call), feeds the residuals to the UNet, splits the prediction
for classifier-free guidance and steps the scheduler; all under ``torch.no_grad``.

Models are left at their random initialisation: speed does not depend on the weights, and nothing
is trained here. The ControlNet's zero convolutions are filled with small random weights so that
its residuals reach the UNet and the image comparison means something.
- ``--model default``: ``params.yaml``'s pixel config at ``data.image_size`` (on the CPU unless a
  GPU is there).
- ``--model sd15``: a UNet and ControlNet of Stable Diffusion 1.5's sizes (64x64 latents, 512 px
  controls) and SD's VAE decoding the samples in both loops, batch 8, under bf16 autocast on a GPU.

Run: ``.venv/bin/python benchmarks/sample.py [--model default|sd15] [--images 32] [--steps 20]
[--rounds 2] [--guidance 1 2] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel

from controlbreast.config import load_config
from controlbreast.diffusion.backends import PixelCodec, VaeCodec
from controlbreast.diffusion.config import SamplingConfig
from controlbreast.diffusion.models import ClassEmbedding, Denoiser, noise_scheduler, pixel_unet
from controlbreast.diffusion.sampling import generate, initial_noise, sampler

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@dataclass
class Setup:
    """Models, inputs and sampler of one comparison; ``controls`` (N, 1, S, S) in [0, 1]."""

    unet: UNet2DConditionModel
    controlnet: ControlNetModel
    classes: ClassEmbedding
    scheduler: DDPMScheduler
    labels: torch.Tensor
    seeds: list[int]
    controls: torch.Tensor
    cfg: SamplingConfig
    codec: PixelCodec | VaeCodec = field(default_factory=PixelCodec)  # final sample -> image
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # the models'; inputs: CPU


def default_setup(images: int, steps: int, guidance: float, scheduler: str) -> Setup:
    """The default pixel model at random init, ``images`` random edge controls, params' batch size."""
    config = load_config(PARAMS)
    torch.manual_seed(0)
    unet = pixel_unet(config.diffusion.pixel, config.data.image_size).eval()
    controlnet = _awake(ControlNetModel.from_unet(
        unet, conditioning_channels=1,
        conditioning_embedding_out_channels=(config.diffusion.pixel.control_embedding_channels,)))
    classes = ClassEmbedding(num_classes=3, dim=config.diffusion.pixel.cross_attention_dim).eval()
    labels, controls = _inputs(images, config.data.image_size)
    batch = (config.generate.sampling or config.sampling).batch_size
    cfg = SamplingConfig(scheduler=scheduler, steps=steps, guidance_scale=guidance, batch_size=batch)
    return Setup(unet, controlnet, classes, noise_scheduler(config.diffusion), labels,
                 list(range(images)), controls, cfg)


def sd15_setup(images: int, steps: int, guidance: float, scheduler: str) -> Setup:
    """SD-1.5-sized UNet, ControlNet and VAE at random init (``train_step.py``'s), on the GPU if
    there is one; ``images`` random edge controls at 512 px, batch 8."""
    from train_step import SD15, sd_models

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unet, controlnet, vae = sd_models(**SD15)
    classes = ClassEmbedding(num_classes=3, dim=SD15["cross"], tokens=77)
    labels, controls = _inputs(images, SD15["size"])
    cfg = SamplingConfig(scheduler=scheduler, steps=steps, guidance_scale=guidance, batch_size=8)
    training = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear")
    return Setup(unet.eval().to(device), _awake(controlnet).to(device), classes.eval().to(device), training,
                 labels, list(range(images)), controls, cfg, VaeCodec(vae.eval().to(device)), device)


def _awake(controlnet: ControlNetModel) -> ControlNetModel:
    """The ControlNet with its zero convolutions off zero, so that its residuals matter."""
    for name, parameter in controlnet.named_parameters():
        if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                            "controlnet_cond_embedding.conv_out")):
            parameter.data.normal_(0, 0.02)
    return controlnet.eval()


def _inputs(images: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) class labels and (N, 1, side, side) random sparse edge controls, seeded."""
    generator = torch.Generator().manual_seed(1)
    controls = (torch.rand(images, 1, side, side, generator=generator) > 0.9).float()
    return torch.randint(0, 3, (images,), generator=generator), controls


@torch.no_grad()
def reference(setup: Setup) -> torch.Tensor:
    """(N, 1, S, S) images in [0, 1], sampled batch by batch as the diffusers pipeline does."""
    cfg, device = setup.cfg, setup.device
    shape = (setup.unet.config.in_channels, setup.unet.config.sample_size, setup.unet.config.sample_size)
    scheduler = sampler(cfg.scheduler, setup.scheduler)
    guided = cfg.guidance_scale > 1
    outputs = []
    for start in range(0, len(setup.labels), cfg.batch_size):
        rows = slice(start, start + cfg.batch_size)
        labels, image = setup.labels[rows].to(device), setup.controls[rows].to(device)
        prompt_embeds = setup.classes(labels)
        if guided:  # the pipeline: negative first, then the prompt; the control repeated
            null = torch.full_like(labels, setup.classes.null_label)
            prompt_embeds = torch.cat([setup.classes(null), prompt_embeds])
            image = torch.cat([image] * 2)
        scheduler.set_timesteps(cfg.steps)
        latents = initial_noise(setup.seeds[rows], shape).to(device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            latent_model_input = torch.cat([latents] * 2) if guided else latents
            latent_model_input = scheduler.scale_model_input(latent_model_input, t)
            down, mid = setup.controlnet(latent_model_input, t, encoder_hidden_states=prompt_embeds,
                                         controlnet_cond=image, conditioning_scale=cfg.controlnet_scale,
                                         guess_mode=False, return_dict=False)
            noise_pred = setup.unet(latent_model_input, t, encoder_hidden_states=prompt_embeds,
                                    down_block_additional_residuals=down,
                                    mid_block_additional_residual=mid, return_dict=False)[0]
            if guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + cfg.guidance_scale * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        outputs.append(((setup.codec.decode(latents).float().cpu() + 1) / 2).clamp(0, 1))
    return torch.cat(outputs)


def ours(setup: Setup) -> torch.Tensor:
    """(N, 1, S, S) images in [0, 1] from the project's sampling loop."""
    denoiser = Denoiser(setup.unet, setup.classes, setup.controlnet).eval()
    shape = (setup.unet.config.in_channels, setup.unet.config.sample_size, setup.unet.config.sample_size)
    return generate(denoiser, setup.codec, setup.scheduler, setup.labels, setup.seeds, shape, setup.cfg,
                    setup.controls)


def _timed(loop, setup: Setup) -> tuple[float, torch.Tensor]:
    """Images/s of one loop over the set: bf16 autocast on a GPU, the clock read after the device
    has finished."""
    cuda = setup.device.type == "cuda"
    precision = torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()
    began = time.perf_counter()
    with precision:
        images = loop(setup)
    if cuda:
        torch.cuda.synchronize(setup.device)
    return len(images) / (time.perf_counter() - began), images


def measure(setup: Setup, rounds: int) -> dict:
    """Best images/s of each loop over ``rounds`` (who runs first alternates), after one untimed
    warm-up batch each (the first call pays allocation and, for ours, any compilation)."""
    loops = [("reference", reference), ("ours", ours)]
    warm = Setup(**{**setup.__dict__, "labels": setup.labels[:2], "seeds": setup.seeds[:2],
                    "controls": setup.controls[:2]})
    warmup = {name: len(warm.labels) / _timed(loop, warm)[0] for name, loop in loops}
    rates, images = {"reference": [], "ours": []}, {}
    for round_ in range(rounds):
        for name, loop in loops[::-1] if round_ % 2 else loops:
            rate, images[name] = _timed(loop, setup)
            rates[name].append(rate)
    difference = (images["ours"] - images["reference"]).abs().max().item()
    return {"rates": rates, "warmup": warmup, "max_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("default", "sd15"), default="default")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scheduler", default="ddim", choices=("ddim", "unipc", "dpmsolver++"))
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for both loops; 0: torch's default. On a machine shared "
                             "with other jobs use 1: OpenMP threads that wait on busy cores slow a "
                             "forward 10x")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    build = {"default": default_setup, "sd15": sd15_setup}[args.model]
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{args.model} model (random init) on {where}, {torch.get_num_threads()} threads; {args.images} "
          f"images, {args.steps} {args.scheduler} steps, {args.rounds} rounds")
    for guidance in args.guidance:
        result = measure(build(args.images, args.steps, guidance, args.scheduler), args.rounds)
        best = {name: max(rates) for name, rates in result["rates"].items()}
        for name in ("reference", "ours"):
            rounds = ", ".join(f"{r:.2f}" for r in result["rates"][name])
            print(f"guidance {guidance:g} {name:9s}: {best[name]:6.2f} images/s (rounds: {rounds}); "
                  f"first batch {result['warmup'][name]:.1f} s")
        print(f"guidance {guidance:g} ratio ours/reference: {best['ours'] / best['reference']:.2f}; "
              f"max |ours - reference| = {result['max_difference']:.2e}")


if __name__ == "__main__":
    main()
