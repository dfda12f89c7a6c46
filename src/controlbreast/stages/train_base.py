"""``controlbreast train-base``: the class-conditional diffusion model → ``models/base``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.diffusion.pipeline import train_base
from controlbreast.distributed import is_main_process, peers
from controlbreast.tracking import stage_run


def main(params: Path, resume: bool) -> None:
    """Train the base model, logging params, per-step loss, sample grids and the model to MLflow."""
    config = load_config(params)
    if not is_main_process():  # the same steps on its share of each batch; writes nothing
        with peers("train_base"):
            train_base(config, resume=resume)
        return
    with peers("train_base"), stage_run(config, "train_base",
                                        ("seed", "diffusion", "train_base", "sampling")):
        summary = train_base(config, resume=resume)
        mlflow.set_tag("resumed_across_code_change", str(summary.pop("resumed_across_code_change")).lower())
        mlflow.log_metrics({f"final_{key}": value for key, value in summary.items()})
        mlflow.log_artifacts(str(Path(config.paths.models) / "base"), "model")
    print(f"train_base: {summary['steps']} steps, loss {summary['final_loss']:.4f}, "
          f"{summary['samples_per_second']:.1f} samples/s -> {Path(config.paths.models) / 'base'}")
