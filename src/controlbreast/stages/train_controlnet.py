"""``controlbreast train-controlnet``: a ControlNet on the frozen base → ``models/controlnet``."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.diffusion.pipeline import train_controlnet
from controlbreast.distributed import is_main_process, peers
from controlbreast.tracking import stage_run


def main(params: Path, resume: bool) -> None:
    """Train the ControlNet, logging per-step loss, control fidelity, grids and the model to MLflow."""
    config = load_config(params)
    if not is_main_process():  # the same steps on its share of each batch; writes nothing
        with peers("train_controlnet"):
            train_controlnet(config, resume=resume)
        return
    sections = ("seed", "controls", "diffusion", "train_controlnet", "sampling")
    with peers("train_controlnet"), stage_run(config, "train_controlnet", sections):
        summary = train_controlnet(config, resume=resume)
        mlflow.set_tag("resumed_across_code_change", str(summary.pop("resumed_across_code_change")).lower())
        mlflow.log_metrics({f"final_{key}": value for key, value in summary.items()})
        mlflow.log_artifacts(str(Path(config.paths.models) / "controlnet"), "model")
    fidelity = (f", control F1 {summary['control_f1']:.3f} vs shuffled {summary['control_f1_shuffled']:.3f}"
                if "control_f1" in summary else " (resumed at its last step: no new validation)")
    print(f"train_controlnet: {summary['steps']} steps, loss {summary['final_loss']:.4f}{fidelity} "
          f"-> {Path(config.paths.models) / 'controlnet'}")
