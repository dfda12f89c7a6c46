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

from controlbreast.config import Config
from controlbreast.data.subsets import fraction_config, subset_ids
from controlbreast.diffusion.pipeline import train_base, train_controlnet
from controlbreast.generation.generate import generate_set


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
