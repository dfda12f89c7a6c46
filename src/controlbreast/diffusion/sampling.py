"""One sampling loop for both back ends: classifier-free guidance and ControlNet control.

Every image starts from noise drawn from its own seed (or, real-guided, from a real image noised
with it), and the samplers offered are deterministic given that noise (DDIM with eta 0, UniPC,
DPM-Solver++), so any image can be regenerated alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm import tqdm

from controlbreast.diffusion.config import SamplingConfig
from controlbreast.diffusion.models import Denoiser


def sampler(kind: str, training_scheduler: SchedulerMixin) -> SchedulerMixin:
    """A fresh sampling scheduler of ``kind`` sharing the training noise schedule.

    A training schedule that clips the clean-sample estimate (the pixel back end) is honoured by
    every sampler: DDIM clips itself; UniPC and DPM-Solver++ threshold at the same range.
    """
    config = training_scheduler.config
    if kind == "ddim":
        return DDIMScheduler.from_config(config, timestep_spacing="trailing", set_alpha_to_one=False)
    clip = {"thresholding": True, "sample_max_value": config.clip_sample_range} \
        if config.get("clip_sample") else {}
    if kind == "unipc":
        return UniPCMultistepScheduler.from_config(config, timestep_spacing="trailing", **clip)
    if kind == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++",
                                                       timestep_spacing="trailing", **clip)
    raise ValueError(f"unknown sampling.scheduler {kind!r}")


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *shape) standard normal noise, row i drawn from ``seeds[i]`` alone."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
                        for seed in seeds])


@contextmanager
def control_encoded_once(denoiser: Denoiser, control: torch.Tensor | None,
                         dtype: torch.dtype) -> Iterator[torch.Tensor | None]:
    """Yield the control as the denoiser should take it for a whole sampling loop: its ControlNet
    conditioning embedding (N, c0, h, w), computed here once, while the ControlNet's own embedding
    module is an identity.

    diffusers' ``ControlNetModel`` runs ``controlnet_cond_embedding`` on the control at every call,
    but the embedding depends on the control alone (not on the timestep, sample or class), so every
    step of a loop and both halves of a guided batch would recompute the same tensor. The module is
    restored on exit, so saved weights and training never see the swap. A ControlNet that reorders
    channels first (``bgr``) gets its control unchanged.
    """
    controlnet = None if control is None else denoiser.controlnet
    if controlnet is None or controlnet.config.controlnet_conditioning_channel_order != "rgb":
        yield control
        return
    embedding = controlnet.controlnet_cond_embedding
    encoded = embedding(denoiser.control_input(control, dtype))
    controlnet.controlnet_cond_embedding = torch.nn.Identity()
    try:
        yield encoded
    finally:
        controlnet.controlnet_cond_embedding = embedding


def start(scheduler: SchedulerMixin, noise: torch.Tensor, steps: int, init: torch.Tensor | None,
          strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The first sample and the timesteps to run. Pure noise and every step, or (real-guided,
    ``strength`` s < 1, diffusers' img2img rule) ``init`` noised to the step of the last
    ``max(1, round(s * steps))`` steps, which are the ones run."""
    scheduler.set_timesteps(steps)
    if init is None or strength >= 1.0:
        return noise * scheduler.init_noise_sigma, scheduler.timesteps
    first = steps - max(1, round(strength * steps))
    if hasattr(scheduler, "set_begin_index"):  # multistep solvers keep their own step counter
        scheduler.set_begin_index(first * scheduler.order)
    timesteps = scheduler.timesteps[first * scheduler.order:]
    return scheduler.add_noise(init, noise, timesteps[:1]), timesteps


@torch.no_grad()
def _denoise(denoiser: Denoiser, scheduler: SchedulerMixin, noise: torch.Tensor, labels: torch.Tensor,
             control: torch.Tensor | None, cfg: SamplingConfig, init: torch.Tensor | None = None,
             strength: float = 1.0) -> torch.Tensor:
    """One batch from noise to a clean sample. Guidance stacks copies of the batch into one forward:
    the conditional rows, then the null class (classifier-free guidance), then the conditional class
    without its control (control guidance): the ControlNet's residuals scaled to zero (``control_null:
    base``, the base UNet alone) or an all-zero control (``empty``, for a ControlNet trained with
    ``diffusion.control_dropout``)."""
    null = torch.full_like(labels, denoiser.class_embedding.null_label)
    class_guided = cfg.guidance_scale != 1.0
    control_guided = control is not None and cfg.control_guidance != 1.0
    empty_null = control_guided and cfg.control_null == "empty"
    rows = [(labels, cfg.controlnet_scale, control)]
    rows += [(null, cfg.controlnet_scale, control)] if class_guided else []
    if control_guided:
        rows += [(labels, cfg.controlnet_scale, torch.zeros_like(control)) if empty_null
                 else (labels, 0.0, control)]
    scale = cfg.controlnet_scale
    if control_guided:  # one residual scale per stacked row: (copies x N, 1, 1, 1)
        per_copy = torch.tensor([s for _, s, _ in rows], dtype=noise.dtype, device=noise.device)
        scale = per_copy.repeat_interleave(len(labels)).view(-1, 1, 1, 1)
    stacked = None if control is None else torch.cat([c for _, _, c in rows])
    with control_encoded_once(denoiser, stacked, noise.dtype) as encoded:
        sample, timesteps = start(scheduler, noise, cfg.steps, init, strength)
        return _loop(denoiser, scheduler, sample, timesteps, torch.cat([r for r, _, _ in rows]), encoded,
                     scale, cfg, class_guided, control_guided)


def _guided(prediction: torch.Tensor, cfg: SamplingConfig, class_guided: bool,
            control_guided: bool) -> torch.Tensor:
    """The guided prediction from the stacked copies' predictions (``_denoise``'s order):
    ``u + g (c - u)`` for the class, then ``+ (s - 1) (c - n)`` for the control."""
    parts = prediction.chunk(1 + class_guided + control_guided)
    conditional = parts[0]
    guided = parts[1] + cfg.guidance_scale * (conditional - parts[1]) if class_guided else conditional
    if control_guided:
        guided = guided + (cfg.control_guidance - 1.0) * (conditional - parts[-1])
    return guided


def _loop(denoiser: Denoiser, scheduler: SchedulerMixin, sample: torch.Tensor, timesteps: torch.Tensor,
          labels: torch.Tensor, control: torch.Tensor | None, scale: float | torch.Tensor,
          cfg: SamplingConfig, class_guided: bool, control_guided: bool) -> torch.Tensor:
    """The steps: one forward per step over every stacked copy of the batch."""
    copies = len(labels) // len(sample)
    for timestep in timesteps:
        model_input = scheduler.scale_model_input(torch.cat([sample] * copies), timestep)
        steps = torch.full((len(model_input),), int(timestep), dtype=torch.long, device=model_input.device)
        prediction = denoiser(model_input, steps, labels, control, scale)
        sample = scheduler.step(_guided(prediction, cfg, class_guided, control_guided), timestep,
                                sample).prev_sample
    return sample


@torch.no_grad()
def generate(denoiser: Denoiser, codec, training_scheduler: SchedulerMixin, labels: torch.Tensor,
             seeds: list[int], sample_shape: tuple[int, int, int], cfg: SamplingConfig,
             controls: torch.Tensor | None = None, progress: bool = False, init: torch.Tensor | None = None,
             strength: float = 1.0) -> torch.Tensor:
    """Images (N, 1, H, W) in [0, 1] for ``labels`` (N,), ``seeds`` and optional controls.

    ``controls``: (N, C, H, W) in [0, 1], or None for the base model alone. ``sample_shape`` is the
    diffusion's (c, h, w): the image's for pixel, the latent's for latent. ``init`` (N, 1, H, W) in
    [0, 1] with ``strength`` < 1: real-guided generation from those images (``start``).
    """
    denoiser.eval()
    scheduler = sampler(cfg.scheduler, training_scheduler)
    device = next(denoiser.parameters()).device
    outputs = []
    starts = range(0, len(labels), cfg.batch_size)
    for start in tqdm(starts, desc="sampling", unit="batch", disable=not progress):
        rows = slice(start, start + cfg.batch_size)
        noise = initial_noise(seeds[rows], sample_shape).to(device)
        control = None if controls is None else controls[rows].to(device)
        source = None if init is None else codec.encode(init[rows].to(device) * 2 - 1).to(noise.dtype)
        sample = _denoise(denoiser, scheduler, noise, labels[rows].to(device), control, cfg, source, strength)
        outputs.append(((codec.decode(sample).float().cpu() + 1) / 2).clamp(0, 1))
    return torch.cat(outputs)
