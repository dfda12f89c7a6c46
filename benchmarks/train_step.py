"""ControlNet training speed: our loop (``diffusion/train.py``) beside a plain reference loop written
the way diffusers' ``examples/controlnet/train_controlnet.py`` writes it, same model, batch and
precision, in one process. Prints samples/s of each and the ratio (ours / reference; above 1 means
we are faster), peak memory, and with ``--flops`` the model FLOPs utilisation.

What the reference does per step, as the example does: take a batch from a shuffling DataLoader,
encode it with the VAE (latent back end; the example encodes on every step), draw noise and
timesteps, run the ControlNet, feed its residuals to the frozen UNet, MSE on epsilon, backward,
clip, AdamW step, zero grads. Ours trains the same ControlNet through ``train()`` (cached latents,
seeded batches, EMA off, checkpoints and validation out of the timed window).

Configurations:
- ``--model default`` (the default): the pixel back end of ``params.yaml`` at ``data.image_size``,
  on the CPU unless a GPU is there.
- ``--model tiny-latent``: a small Stable-Diffusion-layout model (VAE 64 px → 8x8 latents), to show
  what caching the VAE encode saves on a CPU.
- ``--model sd15``: a UNet and ControlNet of Stable Diffusion 1.5's sizes built from config, 512 px
  images (64x64 latents) with SD's VAE, bf16, batch 8; for a GPU.

Run: ``.venv/bin/python benchmarks/train_step.py [--model default|tiny-latent|sd15] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel

from controlbreast.config import load_config, parse_config
from controlbreast.diffusion.backends import VaeCodec
from controlbreast.diffusion.data import TrainingSet, encode_images
from controlbreast.diffusion.models import ClassEmbedding, Denoiser, noise_scheduler, pixel_unet
from controlbreast.diffusion.train import Trainee, peak_memory_mb, train

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks


@dataclass
class Setup:
    """One benchmark configuration: models, data, batch and precision."""

    unet: UNet2DConditionModel
    controlnet: ControlNetModel
    classes: ClassEmbedding
    scheduler: DDPMScheduler
    vae: AutoencoderKL | None
    images: torch.Tensor  # (N, 1, H, W) in [-1, 1]
    controls: torch.Tensor  # (N, 1, H, W) in [0, 1]
    labels: torch.Tensor
    batch_size: int
    precision: str


def _data(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, size, size, generator=generator) * 2 - 1
    controls = (torch.rand(count, 1, size, size, generator=generator) > 0.9).float()
    return images, controls, torch.randint(0, 3, (count,), generator=generator)


def default_setup() -> Setup:
    config = load_config(PARAMS)
    unet = pixel_unet(config.diffusion.pixel, config.data.image_size)
    embedding = (config.diffusion.pixel.control_embedding_channels,)
    controlnet = ControlNetModel.from_unet(unet, conditioning_channels=1,
                                           conditioning_embedding_out_channels=embedding)
    classes = ClassEmbedding(num_classes=3, dim=config.diffusion.pixel.cross_attention_dim)
    images, controls, labels = _data(256, config.data.image_size)
    return Setup(unet, controlnet, classes, noise_scheduler(config.diffusion), None, images, controls,
                 labels, config.train_controlnet.batch_size, config.train_controlnet.mixed_precision)


def sd_models(width: tuple[int, ...], vae_width: tuple[int, ...], size: int, cross: int, heads,
              layers: int, groups: int) -> tuple[UNet2DConditionModel, ControlNetModel, AutoencoderKL]:
    """A Stable-Diffusion-layout UNet, its ControlNet (1-channel control at ``size`` px) and a VAE
    from ``size`` px images, built from config at random init (also ``sample.py``'s SD-1.5 models)."""
    down = ("CrossAttnDownBlock2D",) * (len(width) - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(width) - 1)
    unet = UNet2DConditionModel(sample_size=size // 2 ** (len(vae_width) - 1), in_channels=4, out_channels=4,
                                block_out_channels=width, layers_per_block=layers, down_block_types=down,
                                up_block_types=up, cross_attention_dim=cross, attention_head_dim=heads,
                                norm_num_groups=groups)
    embedding = (16, 32, 96, 256)[:len(vae_width)]
    controlnet = ControlNetModel.from_unet(unet, conditioning_channels=1,
                                           conditioning_embedding_out_channels=embedding)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vae_width,
                        down_block_types=("DownEncoderBlock2D",) * len(vae_width),
                        up_block_types=("UpDecoderBlock2D",) * len(vae_width), layers_per_block=2,
                        norm_num_groups=groups)
    return unet, controlnet, vae


SD15 = {"width": (320, 640, 1280, 1280), "vae_width": (128, 256, 512, 512), "size": 512, "cross": 768,
        "heads": 8, "layers": 2, "groups": 32}


def _sd_like(models: dict, count: int, batch: int, precision: str) -> Setup:
    unet, controlnet, vae = sd_models(**models)
    images, controls, labels = _data(count, models["size"])
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear")
    return Setup(unet, controlnet, ClassEmbedding(num_classes=3, dim=models["cross"], tokens=77), scheduler,
                 vae, images, controls, labels, batch, precision)


def tiny_latent_setup() -> Setup:
    models = {"width": (32, 64), "vae_width": (32, 64, 64, 64), "size": 64, "cross": 64, "heads": 8,
              "layers": 1, "groups": 32}
    return _sd_like(models, 128, 16, "no")


def sd15_setup() -> Setup:
    return _sd_like(SD15, 64, 8, "bf16")


def _dtype(precision: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def reference(setup: Setup, steps: int, device: torch.device) -> float:
    """Samples/s of the example's loop: VAE encode per step, fp32 ControlNet, frozen UNet in the
    mixed dtype under autocast, AdamW (not fused), DataLoader with shuffling."""
    dtype = _dtype(setup.precision)
    unet = setup.unet.to(device, dtype).requires_grad_(False)
    vae = setup.vae.to(device, dtype).requires_grad_(False) if setup.vae is not None else None
    controlnet = setup.controlnet.to(device).train()
    classes = setup.classes.to(device).requires_grad_(False)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=1e-5, weight_decay=1e-2)
    dataset = torch.utils.data.TensorDataset(setup.images, setup.controls, setup.labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=setup.batch_size, shuffle=True, drop_last=True)
    batches = iter(())
    began = None
    for step in range(steps + 3):  # three warm-up steps
        if step == 3:
            _sync(device)
            began = time.perf_counter()
        try:
            images, controls, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, controls, labels = next(batches)
        images, controls, labels = images.to(device), controls.to(device), labels.to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            if vae is not None:
                rgb = images.repeat(1, 3, 1, 1).to(dtype)
                latents = vae.encode(rgb).latent_dist.sample() * vae.config.scaling_factor
            else:
                latents = images
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, setup.scheduler.config.num_train_timesteps, (len(latents),),
                                      device=device)
            noisy = setup.scheduler.add_noise(latents, noise, timesteps)
            context = classes(labels).to(noisy.dtype)
            down, mid = controlnet(noisy, timesteps, encoder_hidden_states=context,
                                   controlnet_cond=controls, return_dict=False)
            prediction = unet(noisy, timesteps, encoder_hidden_states=context,
                              down_block_additional_residuals=[d.to(dtype) for d in down],
                              mid_block_additional_residual=mid.to(dtype)).sample
            loss = F.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    return steps * setup.batch_size / (time.perf_counter() - began)


def ours(setup: Setup, steps: int, device: torch.device) -> float:
    """Samples/s of ``train()`` on the same ControlNet: latents encoded once before training."""
    dtype = _dtype(setup.precision)
    codec = VaeCodec(setup.vae.to(device, dtype)) if setup.vae is not None else None
    latents = setup.images if codec is None else encode_images(codec, setup.images, setup.batch_size)
    data = TrainingSet(tuple(map(str, range(len(latents)))), latents.cpu(), setup.labels, setup.controls)
    unet = setup.unet.to(device, dtype).requires_grad_(False)
    denoiser = Denoiser(unet, setup.classes.requires_grad_(False), setup.controlnet)
    config = parse_config({"train_controlnet": {
        "steps": steps + 3, "batch_size": setup.batch_size, "learning_rate": 1e-5, "lr_warmup_steps": 0,
        "mixed_precision": setup.precision, "checkpoint_every": 10_000, "validate_every": 10_000,
        "log_every": 10_000}, "diffusion": {"hflip": False, "label_dropout": 0.0}}, "benchmark")
    trainee = Trainee(denoiser, list(setup.controlnet.parameters()), lambda folder: None,
                      lambda folder: None, use_control=True)
    timings = []

    def timer(_denoiser, step):
        _sync(device)
        timings.append((step, time.perf_counter()))

    with tempfile.TemporaryDirectory() as scratch:
        config = config.model_copy(update={"train_controlnet": config.train_controlnet.model_copy(
            update={"validate_every": 1})})
        train(trainee, data, setup.scheduler, config.train_controlnet, config.diffusion, stage="ours",
              seed=0, checkpoint_folder=Path(scratch), code="benchmark", validate=timer)
    (first, start), (last, end) = timings[2], timings[-1]
    return (last - first) * setup.batch_size / (end - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_sample(setup: Setup, device: torch.device) -> float:
    """FLOPs of one ControlNet training step per sample, counted by ``torch.utils.flop_counter``
    (forward of ControlNet and frozen UNet, backward through both to the ControlNet's weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    dtype = _dtype(setup.precision)
    denoiser = Denoiser(setup.unet.to(device, dtype), setup.classes.to(device), setup.controlnet.to(device))
    side = setup.unet.config.sample_size
    sample = torch.randn(2, setup.unet.config.in_channels, side, side, device=device)
    control = setup.controls[:2].to(device)
    with FlopCounterMode(display=False) as counter, torch.autocast(device.type, dtype=dtype,
                                                                    enabled=dtype != torch.float32):
        loss = denoiser(sample, torch.tensor([10, 500], device=device), setup.labels[:2].to(device),
                        control).float().pow(2).mean()
        loss.backward()
    setup.controlnet.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def _measure(build, steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Samples/s and peak memory of reference and ours, alternated ``rounds`` times on fresh models
    (first one, then the other first), so that load and warm-up on a shared machine hit both alike."""
    results = {"reference": [], "ours": [], "reference_mb": [], "ours_mb": []}
    loops = [("reference", reference), ("ours", ours)]
    for round_ in range(rounds):
        for name, loop in loops[::-1] if round_ % 2 else loops:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            torch.manual_seed(0)
            results[name].append(loop(build(), steps, device))
            results[f"{name}_mb"].append(peak_memory_mb(device))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("default", "tiny-latent", "sd15"), default="default")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flops", action="store_true", help="count FLOPs and report MFU (GPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    build = {"default": default_setup, "tiny-latent": tiny_latent_setup, "sd15": sd15_setup}[args.model]
    print(f"{args.model} on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps x {args.rounds} rounds")
    results = _measure(build, args.steps, args.rounds, device)
    memory = "CUDA peak allocated" if device.type == "cuda" else "process peak RSS (never resets)"
    for name in ("reference", "ours"):
        rates = ", ".join(f"{r:.2f}" for r in results[name])
        print(f"{name:9s}: {max(results[name]):8.2f} samples/s (rounds: {rates}); "
              f"{memory} {max(results[f'{name}_mb']):.0f} MiB")
    print(f"ratio ours/reference (best rounds): {max(results['ours']) / max(results['reference']):.2f}")
    if args.flops:
        flops = flops_per_sample(build(), device)
        print(f"model FLOPs per sample: {flops / 1e12:.3f} TFLOP")
        name = torch.cuda.get_device_name() if device.type == "cuda" else ""
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        if peak:
            for label in ("reference", "ours"):
                utilisation = max(results[label]) * flops / 1e12 / peak
                print(f"MFU {label}: {utilisation:.1%} of {peak:.0f} TFLOP/s bf16")


if __name__ == "__main__":
    main()
