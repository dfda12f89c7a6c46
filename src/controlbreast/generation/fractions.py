"""A generator per real-data fraction (``classifier.fraction_generator: subset``): a clean low-data arm.

The one generator of the whole training split carries every training label in its class embedding
and ControlNet, so a classifier arm "at 42 real images" that draws its synthetic images would learn
from all of them through it. Here each fraction below 1 gets its own: the base model (class
embedding included) and the ControlNet trained on that fraction's subset alone
(``data.subsets``), and the set they draw from its controls, under
``<paths.fraction_generators>/<fraction>/``::

    base/, controlnet/   the models, as ``models/base`` and ``models/controlnet``
    synthetic/           the set, as ``paths.synthetic`` (generate's layout and manifest)
"""

from __future__ import annotations

from pathlib import Path

from controlbreast.config import Config
from controlbreast.data.subsets import subset_ids
from controlbreast.diffusion.pipeline import train_base, train_controlnet
from controlbreast.generation.generate import generate_set


def fraction_folder(config: Config, fraction: float) -> Path:
    """``<paths.fraction_generators>/<fraction>``: the generator of ``fraction`` and its set."""
    return Path(config.paths.fraction_generators) / f"{fraction:g}"


def fraction_config(config: Config, fraction: float) -> Config:
    """The settings under which ``fraction``'s generator trains and draws: its own models and set
    folders, and checkpoints apart from the whole split's."""
    folder = fraction_folder(config, fraction)
    return config.model_copy(update={"paths": config.paths.model_copy(update={
        "models": folder, "synthetic": folder / "synthetic",
        "checkpoints": Path(config.paths.checkpoints) / f"fraction-{fraction:g}"})})


def train_fraction_generator(config: Config, fraction: float, progress: bool = True) -> dict:
    """Train the base and the ControlNet on ``fraction``'s subset alone and draw its set; returns
    the images each saw and the set's counts."""
    subset = subset_ids(config, fraction)
    own = fraction_config(config, fraction)
    base = train_base(own, resume=True, subset=subset)
    controlnet = train_controlnet(own, resume=True)
    drawn = generate_set(own, progress=progress, subset=subset)
    return {"fraction": fraction, "real_images": len(subset), "base": base, "controlnet": controlnet,
            "synthetic": drawn}
