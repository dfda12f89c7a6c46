"""``controlbreast train-controlnet``: a ControlNet on the frozen base → ``models/controlnet``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.diffusion.pipeline import train_controlnet
from controlbreast.tracking import stage_run


def main(params: Path, resume: bool) -> None:
    """Train the ControlNet, logging per-step loss, control fidelity, grids and the model to MLflow."""
    config = load_config(params)
    with stage_run(config, "train_controlnet",
                   ("seed", "controls", "diffusion", "train_controlnet", "sampling")):
        summary = train_controlnet(config, resume=resume)
        mlflow.log_metrics({f"final_{key}": value for key, value in summary.items()})
        mlflow.log_artifacts(str(Path(config.paths.models) / "controlnet"), "model")
    print(f"train_controlnet: {summary['steps']} steps, loss {summary['final_loss']:.4f}, control F1 "
          f"{summary.get('control_f1', float('nan')):.3f} vs shuffled "
          f"{summary.get('control_f1_shuffled', float('nan')):.3f} "
          f"-> {Path(config.paths.models) / 'controlnet'}")
