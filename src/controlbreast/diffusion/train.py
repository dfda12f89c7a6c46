"""One training loop for both stages (base, ControlNet) and both back ends, run by accelerate.

The maths is diffusers' ``train_controlnet.py``: noise the clean sample at a random timestep,
predict epsilon (or v) with the UNet, which for the ControlNet stage receives the ControlNet's
residuals in its down and mid blocks, and regress on the target; optionally weight by min-SNR.
The shape is not: building models, one loss, the loop, validation and saving are separate.

``accelerate launch`` runs the same loop in many processes (GPUs, or CPUs with ``--cpu``): each
process takes its share of every global batch and only the main one logs, validates and writes
checkpoints (``distributed.py``); mixed precision, gradient accumulation and checkpointing come
from ``TrainConfig``.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, compute_snr
from tqdm import tqdm

from controlbreast import distributed
from controlbreast.diffusion.checkpoints import latest, load_tensors, save, save_tensors
from controlbreast.diffusion.config import DiffusionConfig, TrainConfig
from controlbreast.diffusion.data import TrainingSet, batch_indices, step_generator
from controlbreast.diffusion.models import Denoiser
from controlbreast.errors import TrainingDivergedError
from controlbreast.tracking import StepMetrics


@dataclass
class Trainee:
    """What a stage trains: the denoiser, the parameters it optimises, how to save and load them.

    ``use_control`` feeds each batch's controls to the denoiser (the ControlNet stage).
    """

    denoiser: Denoiser
    parameters: list[torch.nn.Parameter]
    save_parts: Callable[[Path], None]
    load_parts: Callable[[Path], None]
    use_control: bool


@dataclass
class DiffusionTrainResult:
    """What a finished run reports; ``start_step`` > 0 when it resumed; ``processes`` that trained."""

    start_step: int
    steps: int
    resumed_across_code_change: bool
    loss: float
    seconds: float
    samples_per_second: float
    peak_memory_mb: float
    processes: int = 1


def diffusion_loss(denoiser: torch.nn.Module, scheduler: DDPMScheduler, latents: torch.Tensor,
                   labels: torch.Tensor, controls: torch.Tensor | None, generator: torch.Generator,
                   cfg: DiffusionConfig, null_label: int, shard: slice = slice(None)) -> torch.Tensor:
    """Denoising loss of one global batch: latents (N, c, h, w), labels (N,), controls (N, C, H, W).

    Random draws (flips, noise, timesteps, label and control dropout) come from ``generator`` on
    the CPU, for all N rows; the denoiser then sees the rows ``shard`` only, and the result is their
    share of the batch mean (sum / N): the shares of all processes add up to what one process gets
    for the whole batch. A dropped control is all zeros (no edges, no mask): the ControlNet also
    learns the prediction without a control, the null of ``sampling.control_null: empty``.
    """
    count, device = len(latents), latents.device
    if cfg.hflip:
        flip = (torch.rand(count, generator=generator) < 0.5).to(device)
        latents = torch.where(flip[:, None, None, None], latents.flip(-1), latents)
        if controls is not None:
            controls = torch.where(flip[:, None, None, None], controls.flip(-1), controls)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (count,), generator=generator)
    dropped = torch.rand(count, generator=generator) < cfg.label_dropout
    labels = torch.where(dropped.to(device), torch.full_like(labels, null_label), labels)
    if controls is not None and cfg.control_dropout > 0:  # no draw when off: old runs stay reproducible
        blank = (torch.rand(count, generator=generator) < cfg.control_dropout).to(device)
        controls = torch.where(blank[:, None, None, None], torch.zeros_like(controls), controls)
    timesteps = timesteps.to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)[shard]
    target = noise if cfg.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
    target = target[shard]
    timesteps, labels = timesteps[shard], labels[shard]
    prediction = denoiser(noisy, timesteps, labels, None if controls is None else controls[shard])
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if cfg.snr_gamma is not None:
        snr = compute_snr(scheduler, timesteps)
        clipped = torch.clamp(snr, max=cfg.snr_gamma)
        loss = loss * (clipped / snr if cfg.prediction_type == "epsilon" else clipped / (snr + 1))
    return loss.sum() / count


def _guard(loss: float, mean: float | None, step: int, factor: float, root: Path) -> float:
    """The updated running mean of the loss; raises ``TrainingDivergedError`` on nan/inf or explosion."""
    exploded = mean is not None and step > 10 and loss > factor * mean
    if not math.isfinite(loss) or exploded:
        raise TrainingDivergedError(
            f"loss {loss:.4g} at step {step} (running mean {mean if mean is not None else float('nan'):.4g}):"
            f" training diverged; lower the learning rate. The last good checkpoint is kept in {root}")
    return loss if mean is None else 0.98 * mean + 0.02 * loss


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _optimizer(trainee: Trainee, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused on CPU too: one kernel over all parameters instead of a loop of small ops (the
    default ControlNet's 0.58 M parameters: 3 ms a step instead of 67 ms, medians on 2 CPU cores)."""
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(trainee.parameters, lr=cfg.learning_rate,
                             weight_decay=cfg.adam_weight_decay, fused=fused)


def _lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    name = "constant_with_warmup" if cfg.lr_scheduler == "constant" else cfg.lr_scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.lr_warmup_steps,
                         num_training_steps=cfg.steps)


@dataclass
class _Run:
    """What a run carries from step to step; ``start`` and ``loss_mean`` come from a checkpoint."""

    accelerator: Accelerator
    denoiser: torch.nn.Module  # the trainee's denoiser, prepared by accelerate
    optimizer: torch.optim.Optimizer
    lr_schedule: object
    ema: EMAModel | None
    start: int = 0
    loss_mean: float | None = None
    code_changed: bool = False


def _register_hooks(run: _Run, trainee: Trainee) -> None:
    """accelerate saves optimizer, grad scaler and RNG states; these hooks add the trained parts in
    diffusers' ``save_pretrained`` layout (instead of accelerate's flat model files), the LR schedule
    and the EMA weights, and read them back."""

    def save_parts(models: list, weights: list, folder: str) -> None:
        trainee.save_parts(Path(folder))
        save_tensors(Path(folder) / "lr_scheduler.pt", run.lr_schedule.state_dict())
        if run.ema:
            save_tensors(Path(folder) / "ema.pt", run.ema.state_dict())
        weights.clear()

    def load_parts(models: list, folder: str) -> None:
        trainee.load_parts(Path(folder))
        run.lr_schedule.load_state_dict(load_tensors(Path(folder) / "lr_scheduler.pt"))
        if run.ema:
            run.ema.load_state_dict(load_tensors(Path(folder) / "ema.pt"))
        models.clear()

    run.accelerator.register_save_state_pre_hook(save_parts)
    run.accelerator.register_load_state_pre_hook(load_parts)


def _prepare(trainee: Trainee, cfg: TrainConfig, stage: str, checkpoint_folder: Path, code: str,
             resume: bool) -> _Run:
    """Accelerator, optimizer, schedule and EMA, restored from this configuration's latest checkpoint
    if asked (a checkpoint of other code is resumed too, and reported)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    if cfg.gradient_checkpointing:
        for part in (trainee.denoiser.unet, trainee.denoiser.controlnet):
            if part is not None:
                part.enable_gradient_checkpointing()
    optimizer = _optimizer(trainee, cfg, accelerator.device)
    run = _Run(accelerator, trainee.denoiser, optimizer, _lr_schedule(optimizer, cfg),
               EMAModel(trainee.parameters, decay=cfg.ema_decay) if cfg.ema_decay else None)
    trainee.denoiser.to(accelerator.device)
    if run.ema:
        run.ema.to(accelerator.device)
    run.denoiser, run.optimizer = accelerator.prepare(trainee.denoiser, run.optimizer)
    _register_hooks(run, trainee)
    found = latest(checkpoint_folder) if resume else None
    if found:
        accelerator.load_state(str(found.folder))
        if run.ema:
            run.ema.to(accelerator.device)  # its loaded shadow weights arrive on the CPU
        run.start, run.loss_mean, run.code_changed = found.step, found.loss_mean, found.code != code
        note = " (written by other training code: continuing, tagged on the run)" if run.code_changed else ""
        accelerator.print(f"{stage}: resuming from {found.folder} at step {found.step}{note}")
    return run


def _optimizer_step(run: _Run, trainee: Trainee, data: TrainingSet, scheduler: DDPMScheduler,
                    cfg: TrainConfig, diffusion: DiffusionConfig, seed: int, step: int) -> float:
    """One optimizer update (``gradient_accumulation_steps`` micro-batches); the loss of all processes.

    Every process draws the same global micro-batch (rows and noise) and runs the denoiser on its
    share (``distributed.shard``); its loss share is scaled by the process count because gradients
    are averaged over processes, so N processes take the step one process takes.
    """
    accelerator, device = run.accelerator, run.accelerator.device
    shard = distributed.shard(accelerator.process_index, accelerator.num_processes)
    null_label = trainee.denoiser.class_embedding.null_label
    losses = []
    for micro in range(cfg.gradient_accumulation_steps):
        index = step * cfg.gradient_accumulation_steps + micro
        rows = batch_indices(index, cfg.batch_size, len(data), seed)
        controls = data.controls[rows].to(device) if trainee.use_control else None
        with accelerator.accumulate(run.denoiser):
            batch_loss = diffusion_loss(run.denoiser, scheduler, data.latents[rows].to(device),
                                        data.labels[rows].to(device), controls, step_generator(seed, index),
                                        diffusion, null_label, shard)
            accelerator.backward(batch_loss * accelerator.num_processes)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainee.parameters, cfg.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        losses.append(batch_loss.detach())
    run.lr_schedule.step()
    if run.ema:
        run.ema.step(trainee.parameters)
    return accelerator.reduce(torch.stack(losses).mean(), reduction="sum").item()


def _checkpoint(run: _Run, cfg: TrainConfig, folder: Path, code: str, step: int) -> None:
    save(run.accelerator, folder, step, {"loss_mean": run.loss_mean, "code": code}, cfg.keep_checkpoints)


def train(trainee: Trainee, data: TrainingSet, scheduler: DDPMScheduler, cfg: TrainConfig,
          diffusion: DiffusionConfig, *, stage: str, seed: int, checkpoint_folder: Path, code: str,
          resume: bool = False,
          validate: Callable[[Denoiser, int], None] | None = None) -> DiffusionTrainResult:
    """Train ``trainee`` for ``cfg.steps`` optimizer steps; resume from the latest checkpoint if asked.

    ``checkpoint_folder`` is this configuration's folder (``checkpoints.run_folder``); ``code`` is a
    digest of the training code, recorded in each checkpoint so a resume across a code change shows.

    Every step logs loss, learning rate and samples/s; every ``validate_every`` steps ``validate``
    sees the (EMA) denoiser; every ``checkpoint_every`` steps a checkpoint is written. Afterwards
    ``trainee``'s parameters hold the final (EMA, if on) weights, ready to save.
    """
    run = _prepare(trainee, cfg, stage, checkpoint_folder, code, resume)
    main = run.accelerator.is_main_process
    metrics = StepMetrics(every=cfg.log_every) if main else None
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps
    began, loss = time.perf_counter(), run.loss_mean if run.loss_mean is not None else float("nan")
    progress = tqdm(range(run.start, cfg.steps), initial=run.start, total=cfg.steps, desc=stage, unit="step",
                    disable=not run.accelerator.is_local_main_process)
    for step in progress:
        loss = _optimizer_step(run, trainee, data, scheduler, cfg, diffusion, seed, step)
        done = step + 1
        run.loss_mean = _guard(loss, run.loss_mean, done, cfg.divergence_factor, checkpoint_folder)
        progress.set_postfix(loss=f"{loss:.4f}")
        if metrics:
            rate = (done - run.start) * per_step / (time.perf_counter() - began)
            metrics.log({"loss": loss, "lr": run.lr_schedule.get_last_lr()[0], "samples_per_second": rate},
                        done)
        last = done == cfg.steps
        if validate and main and (done % cfg.validate_every == 0 or last):
            model = run.accelerator.unwrap_model(run.denoiser)
            _with_ema(run.ema, trainee, lambda model=model, at=done: validate(model, at))
        if done % cfg.checkpoint_every == 0 or last:
            _checkpoint(run, cfg, checkpoint_folder, code, done)
    if metrics:
        metrics.flush()
    run.accelerator.wait_for_everyone()
    if run.ema:
        run.ema.copy_to(trainee.parameters)
    seconds = time.perf_counter() - began
    rate = (cfg.steps - run.start) * per_step / seconds if cfg.steps > run.start else 0.0
    return DiffusionTrainResult(run.start, cfg.steps, run.code_changed, loss, seconds, rate,
                       peak_memory_mb(run.accelerator.device), run.accelerator.num_processes)


def _with_ema(ema: EMAModel | None, trainee: Trainee, action: Callable[[], None]) -> None:
    """Run ``action`` with the EMA weights swapped in (validation sees what will be saved)."""
    if ema is None:
        action()
        return
    ema.store(trainee.parameters)
    ema.copy_to(trainee.parameters)
    try:
        action()
    finally:
        ema.restore(trainee.parameters)
