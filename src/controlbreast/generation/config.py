"""The ``generate`` section of ``params.yaml``, beside the generation code that reads it: the
synthetic set, its sampler and how its controls vary."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from controlbreast.diffusion.config import SamplingConfig
from controlbreast.sections import PositiveInt, Section


class VariationConfig(Section):
    """Random changes to each training control before it conditions a synthetic image (diversity).

    One affine warp (mirror with probability 0.5, rotation in degrees, scale and shift as fractions
    of the side) and an optional elastic warp (Gaussian-smoothed random displacements of std
    ``elastic_alpha`` pixels, smoothness ``elastic_sigma`` pixels; 0 turns it off). Each image's
    draw comes from its own seed and is stored in the manifest.
    """

    hflip: bool = True
    max_rotation: Annotated[float, Field(ge=0.0, le=45.0)] = 5.0
    max_scale: Annotated[float, Field(ge=0.0, le=0.3)] = 0.05
    max_shift: Annotated[float, Field(ge=0.0, le=0.3)] = 0.03
    elastic_alpha: Annotated[float, Field(ge=0.0, le=20.0)] = 0.0
    elastic_sigma: Annotated[float, Field(gt=0.0, le=50.0)] = 4.0


class GenerateConfig(Section):
    """``generate``: ``per_class`` synthetic images per class, each from a training-split control.

    ``auto`` makes what the classifier arms draw (``mixing.synthetic_needed``): the larger
    of the real training split's size and ``round(classifier.mix_ratio * n_real)``, shared across
    classes in the real training split's proportions (read from the prepared manifest).

    Image ``i`` of the set draws its noise and its control variation from seed ``seed * 1_000_000
    + i``; controls of a class are visited in a seeded order, all before any repeats. ``sampling``
    is the sampler of the set; null uses the ``sampling`` section (the training stages' validation
    sampler, which a few images can afford at more steps than a whole set can). The default, DDIM
    at 10 steps without classifier-free guidance and ControlNet residuals x2, is the measured
    choice params.yaml's comments give.

    ``strength`` s (real-guided generation, SDEdit / img2img): below 1 the sampler starts from the
    real training image whose control conditions the row, varied as that control was and noised to
    step s·T, and runs only the last ``round(s * steps)`` steps; 1 starts from pure noise (exactly
    the set drawn before this option existed).

    ``guided_strength``: the strength of the real-guided set (``generate-guided``, into
    ``paths.synthetic_guided``): the same rows as the plain set (controls, variations, seeds,
    sampler) started from their source real images, for the recipes with ``synthetic: guided``;
    null draws no such set.
    """

    per_class: PositiveInt | Literal["auto"] = "auto"
    seed: Annotated[int, Field(ge=0, le=2**31)] = 0
    strength: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    guided_strength: Annotated[float, Field(gt=0.0, lt=1.0)] | None = 0.6
    variation: VariationConfig = VariationConfig()
    sampling: SamplingConfig | None = SamplingConfig(steps=10, guidance_scale=1.0, controlnet_scale=2.0)
