"""What training shows while it runs: a sample grid and, for the ControlNet, control fidelity.

ControlNets are known to start following their control suddenly, after many steps; the edge F1 of
samples against their own controls, beside the same figure against shuffled controls, logged every
``validate_every`` steps, shows when that happens. Validation controls come from the validation
split, so the curve measures generalisation, not recall of training pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
import numpy as np
import torch

from controlbreast.controls.config import ControlsConfig
from controlbreast.controls.fidelity import control_f1, shuffled
from controlbreast.diffusion.config import SamplingConfig
from controlbreast.diffusion.data import to_uint8, to_unit
from controlbreast.diffusion.models import Denoiser
from controlbreast.diffusion.sampling import generate
from controlbreast.grids import side_by_side


@dataclass
class Validation:
    """Samples for fixed validation examples; called as ``validation(denoiser, step)``.

    ``real``: (K, H, W) uint8; ``labels``: (K,) int64; ``controls``: (K, C, H, W) uint8 or None (the
    base stage). ``history`` keeps every call's metrics for the caller's summary.
    """

    codec: object
    scheduler: object
    sampling: SamplingConfig
    sample_shape: tuple[int, int, int]
    real: np.ndarray
    labels: np.ndarray
    controls: np.ndarray | None
    channels: tuple[str, ...]
    controls_cfg: ControlsConfig
    seed: int = 0
    history: list[dict] = field(default_factory=list)

    def metrics(self, samples: np.ndarray) -> dict[str, float]:
        """Mean control F1 against matched and shuffled controls, and their ratio."""
        if self.controls is None:
            return {}
        matched = control_f1(samples, self.controls, self.channels, self.controls_cfg).mean()
        mismatched = control_f1(samples, self.controls[shuffled(len(samples), self.seed)],
                                self.channels, self.controls_cfg).mean()
        return {"control_f1": float(matched), "control_f1_shuffled": float(mismatched),
                "control_f1_ratio": float(matched / max(mismatched, 1e-6))}

    def __call__(self, denoiser: Denoiser, step: int) -> dict[str, float]:
        controls = None if self.controls is None else to_unit(self.controls)
        seeds = [self.seed + i for i in range(len(self.labels))]
        samples = to_uint8(generate(denoiser, self.codec, self.scheduler, torch.from_numpy(self.labels),
                                    seeds, self.sample_shape, self.sampling, controls))
        denoiser.train()
        values = self.metrics(samples)
        columns = ([] if self.controls is None else [self.controls]) + [samples, self.real]
        if mlflow.active_run():
            mlflow.log_metrics(values, step=step)
            mlflow.log_image(side_by_side(*columns), key="validation_samples", step=step)
        self.history.append({"step": step, **values})
        return values
