"""Several processes training one model: who they are, how they share a batch, and what a lost peer means.

``accelerate launch --num_processes N`` and ``torchrun --nproc_per_node N`` start N copies of a stage
with ``RANK`` and ``WORLD_SIZE`` set. Every process computes the same seeded global batch order and
takes its share of each batch (``shard``); gradients are averaged over processes, so N processes take
the steps one process would (within float noise: a half batch sums in another order). Only the main
process (rank 0) logs to MLflow and writes outputs and checkpoints; the others write nothing.

The classifier trains on the CPU (``gloo``); the diffusion stages through accelerate (``gloo`` on CPUs,
NCCL on GPUs). Batch norm sees the whole global batch through ``GlobalBatchNorm`` (torch's own
``SyncBatchNorm`` runs on GPUs only), so its statistics do not depend on the number of processes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from controlbreast.errors import ConfigError, PeerLostError


def rank() -> int:
    """This process's rank under ``accelerate launch``/``torchrun`` (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes the launch started (1 when launched alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process logs, writes outputs and checkpoints (rank 0)."""
    return rank() == 0


def shard(index: int = -1, count: int = -1) -> slice:
    """This process's rows of a global batch: every ``count``-th from ``index`` (default: this launch)."""
    index, count = (rank() if index < 0 else index), (world_size() if count < 0 else count)
    return slice(index, None, count)


def process_group() -> bool:
    """Join the launch's ``gloo`` process group (once) when there are several processes; False alone."""
    if world_size() == 1:
        return False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    return True


PEER_ERRORS = ("gloo", "nccl", "connection reset", "connection closed", "processgroup")


@contextmanager
def peers(what: str) -> Iterator[None]:
    """Turn the end of another process of the launch into one line, and stop before writing.

    When a rank dies, a survivor's next collective fails (gloo: "Connection reset by peer", raised
    from DDP's backward as a plain ``RuntimeError``) and the launcher (torchrun's agent, also behind
    ``accelerate launch``) sends the survivors SIGTERM: both become ``PeerLostError``, so the stage
    unwinds (build folders removed, its MLflow run closed as FAILED) and the CLI prints one line.
    Later SIGTERMs are ignored so that this process can finish saying so. Alone nothing changes.
    """
    if world_size() == 1:
        yield
        return

    def lost(signum: int = signal.SIGTERM, frame: object = None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise PeerLostError(f"{what}: process {rank()} of {world_size()} stopped because another process "
                            "of the launch ended (killed or failed: see its output); nothing was written, "
                            "the last checkpoint is kept (run again with --resume)")

    previous = signal.signal(signal.SIGTERM, lost)
    try:
        yield
    except RuntimeError as error:
        if isinstance(error, torch.distributed.DistError) or any(
                word in str(error).lower() for word in PEER_ERRORS):
            lost()
        raise
    signal.signal(signal.SIGTERM, previous)


def total(value: torch.Tensor) -> float:
    """The sum of a scalar over the launch's processes (``value`` itself alone)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = value.clone()
        torch.distributed.all_reduce(value)
    return float(value)


def agreed(values: Mapping[str, float]) -> dict[str, float]:
    """Rank 0's ``values`` on every process, so decisions (early stopping, the kept epoch) match."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return dict(values)
    tensor = torch.tensor(list(values.values()), dtype=torch.float64)
    torch.distributed.broadcast(tensor, src=0)
    return dict(zip(values, tensor.tolist(), strict=True))


class GlobalBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the global batch across processes.

    Mean and variance are all-reduced (two passes: the mean, then squared deviations) through the
    differentiable ``torch.distributed.nn`` all-reduce, so gradients also flow between processes'
    samples as they do within one process's batch. Input (N, C, H, W); eval mode is plain batch norm.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_initialized()):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = all_reduce(torch.tensor(float(input.numel() // input.shape[1])))
        mean = all_reduce(input.sum(dims)) / count
        centred = input - mean[None, :, None, None]
        variance = all_reduce(centred.square().sum(dims)) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(variance.detach() * count / (count - 1), momentum)
        scale = torch.rsqrt(variance + self.eps)
        if self.affine:
            scale = scale * self.weight
        out = centred * scale[None, :, None, None]
        return out + self.bias[None, :, None, None] if self.affine else out


def global_batch_norm(model: nn.Module) -> nn.Module:
    """``model`` with every plain ``BatchNorm2d`` swapped (in place) for ``GlobalBatchNorm`` holding
    the same parameter and buffer tensors; per-sample norms (layer, group) need nothing, and other
    batch norm classes (timm's ``BatchNormAct2d``) raise ``ConfigError``."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and type(child) is not nn.BatchNorm2d:
            raise ConfigError(f"{type(child).__name__} layers cannot share batch statistics across CPU "
                              "processes: train this model in one process, or pick one with BatchNorm2d "
                              "or per-sample norms (group, layer)")
        if type(child) is nn.BatchNorm2d:
            swapped = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
            for key, value in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                setattr(swapped, key, value)  # the same tensors: an optimizer made before still trains them
            swapped.train(child.training)
            setattr(model, name, swapped)
        else:
            global_batch_norm(child)
    return model
