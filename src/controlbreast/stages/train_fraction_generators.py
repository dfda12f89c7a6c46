"""``controlbreast train-fraction-generators``: with ``classifier.fraction_generator: subset``, a base
model, a ControlNet and a synthetic set per real fraction below 1, each from that fraction's images
alone → ``<paths.fraction_generators>/<fraction>/`` (``generation/fractions.py``); with ``whole``
an empty folder (the fraction arms then draw the whole split's set)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from controlbreast.config import load_config
from controlbreast.data.subsets import fraction_folder
from controlbreast.generation.fractions import train_fraction_generator
from controlbreast.tracking import stage_run
from controlbreast.tuning.tuned import apply_tuned, tuned_values


def main(params: Path) -> None:
    """Train and draw every fraction's generator (with the tuned sampler settings), one nested MLflow
    run each; with ``whole``, a run that says so (every DVC stage has its run)."""
    config = load_config(params)
    Path(config.paths.fraction_generators).mkdir(parents=True, exist_ok=True)  # a DVC out, maybe empty
    tuned = {k: v for k, v in tuned_values(config).items() if k not in ("mix_ratio", "filter_threshold")}
    config = apply_tuned(config, tuned)
    mode = config.classifier.fraction_generator
    fractions = sorted(f for f in config.classifier.real_fractions if f < 1.0) if mode == "subset" else []
    with stage_run(config, "train_fraction_generators", ("seed", "diffusion", "train_base",
                                                         "train_controlnet", "generate", "sampling")):
        mlflow.set_tag("fraction_generator", mode)
        for fraction in fractions:
            with mlflow.start_run(run_name=f"fraction-{fraction:g}", nested=True):
                found = train_fraction_generator(config, fraction)
                mlflow.log_metrics({"real_images": found["real_images"],
                                    "synthetic_images": found["synthetic"]["images"]})
            print(f"train-fraction-generators: fraction {fraction:g}: base and ControlNet trained on "
                  f"{found['real_images']} real images, {found['synthetic']['images']} synthetic images "
                  f"-> {fraction_folder(config, fraction)}")
    if mode == "whole":
        print("train-fraction-generators: classifier.fraction_generator is whole: every fraction draws "
              "the generator of the whole training split")
