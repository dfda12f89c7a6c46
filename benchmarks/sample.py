"""Sampling speed: our loop (``diffusion/sampling.py: generate``) beside a reference written the way
diffusers' ``StableDiffusionControlNetPipeline.__call__`` runs a batch, same models, scheduler, steps,
guidance, batch and seeds, in one process. Prints images/s of each, the ratio (ours / reference;
above 1 means we are faster) and the largest pixel difference between their images.

What the reference does, as the pipeline does: the class context is looked up once (the pipeline
encodes the prompt once); the control is duplicated for guidance; every step concatenates the
latents twice when guidance > 1, scales them, runs the ControlNet on the raw control (its
conditioning encoder recomputed every call), feeds the residuals to the UNet, splits the prediction
for classifier-free guidance and steps the scheduler; all under ``torch.no_grad``.

Models are built from ``params.yaml``'s pixel config at ``data.image_size`` and left at their random
initialisation: speed does not depend on the weights, and nothing is trained here. The ControlNet's
zero convolutions are filled with small random weights so that its residuals reach the UNet and the
image comparison means something.

Run: ``.venv/bin/python benchmarks/sample.py [--images 32] [--steps 20] [--rounds 2] [--guidance 1 2]
[--threads 1]``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel

from controlbreast.config import SamplingConfig, load_config
from controlbreast.diffusion.backends import PixelCodec
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


def default_setup(images: int, steps: int, guidance: float, scheduler: str) -> Setup:
    """The default pixel model at random init, ``images`` random edge controls, params' batch size."""
    config = load_config(PARAMS)
    torch.manual_seed(0)
    unet = pixel_unet(config.diffusion.pixel, config.data.image_size).eval()
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_channels=1,
        conditioning_embedding_out_channels=(config.diffusion.pixel.control_embedding_channels,)).eval()
    for name, parameter in controlnet.named_parameters():  # zero convs off zero: residuals matter
        if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                            "controlnet_cond_embedding.conv_out")):
            parameter.data.normal_(0, 0.02)
    classes = ClassEmbedding(num_classes=3, dim=config.diffusion.pixel.cross_attention_dim).eval()
    side = config.data.image_size
    generator = torch.Generator().manual_seed(1)
    controls = (torch.rand(images, 1, side, side, generator=generator) > 0.9).float()
    labels = torch.randint(0, 3, (images,), generator=generator)
    batch = (config.generate.sampling or config.sampling).batch_size
    cfg = SamplingConfig(scheduler=scheduler, steps=steps, guidance_scale=guidance, batch_size=batch)
    return Setup(unet, controlnet, classes, noise_scheduler(config.diffusion), labels,
                 list(range(images)), controls, cfg)


@torch.no_grad()
def reference(setup: Setup) -> torch.Tensor:
    """(N, 1, S, S) images in [0, 1], sampled batch by batch as the diffusers pipeline does."""
    cfg, shape = setup.cfg, tuple(setup.controls.shape[1:])
    scheduler = sampler(cfg.scheduler, setup.scheduler)
    guided = cfg.guidance_scale > 1
    outputs = []
    for start in range(0, len(setup.labels), cfg.batch_size):
        rows = slice(start, start + cfg.batch_size)
        labels, image = setup.labels[rows], setup.controls[rows]
        prompt_embeds = setup.classes(labels)
        if guided:  # the pipeline: negative first, then the prompt; the control repeated
            null = torch.full_like(labels, setup.classes.null_label)
            prompt_embeds = torch.cat([setup.classes(null), prompt_embeds])
            image = torch.cat([image] * 2)
        scheduler.set_timesteps(cfg.steps)
        latents = initial_noise(setup.seeds[rows], shape) * scheduler.init_noise_sigma
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
        outputs.append(((latents + 1) / 2).clamp(0, 1))
    return torch.cat(outputs)


def ours(setup: Setup) -> torch.Tensor:
    """(N, 1, S, S) images in [0, 1] from the project's sampling loop."""
    denoiser = Denoiser(setup.unet, setup.classes, setup.controlnet).eval()
    return generate(denoiser, PixelCodec(), setup.scheduler, setup.labels, setup.seeds,
                    tuple(setup.controls.shape[1:]), setup.cfg, setup.controls)


def _timed(loop, setup: Setup) -> tuple[float, torch.Tensor]:
    began = time.perf_counter()
    images = loop(setup)
    return len(images) / (time.perf_counter() - began), images


def measure(setup: Setup, rounds: int) -> dict:
    """Best images/s of each loop over ``rounds`` (who runs first alternates), after one untimed
    warm-up batch each (the first call pays allocation and, for ours, any compilation)."""
    loops = [("reference", reference), ("ours", ours)]
    warm = Setup(**{**setup.__dict__, "labels": setup.labels[:2], "seeds": setup.seeds[:2],
                    "controls": setup.controls[:2]})
    warmup = {}
    for name, loop in loops:
        began = time.perf_counter()
        loop(warm)
        warmup[name] = time.perf_counter() - began
    rates, images = {"reference": [], "ours": []}, {}
    for round_ in range(rounds):
        for name, loop in loops[::-1] if round_ % 2 else loops:
            rate, images[name] = _timed(loop, setup)
            rates[name].append(rate)
    difference = (images["ours"] - images["reference"]).abs().max().item()
    return {"rates": rates, "warmup": warmup, "max_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    print(f"default pixel model (random init) on CPU, {torch.get_num_threads()} threads; {args.images} "
          f"images, {args.steps} {args.scheduler} steps, {args.rounds} rounds")
    for guidance in args.guidance:
        result = measure(default_setup(args.images, args.steps, guidance, args.scheduler), args.rounds)
        best = {name: max(rates) for name, rates in result["rates"].items()}
        for name in ("reference", "ours"):
            rounds = ", ".join(f"{r:.2f}" for r in result["rates"][name])
            print(f"guidance {guidance:g} {name:9s}: {best[name]:6.2f} images/s (rounds: {rounds}); "
                  f"first batch {result['warmup'][name]:.1f} s")
        print(f"guidance {guidance:g} ratio ours/reference: {best['ours'] / best['reference']:.2f}; "
              f"max |ours - reference| = {result['max_difference']:.2e}")


if __name__ == "__main__":
    main()
