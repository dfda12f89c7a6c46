"""The ``classifier`` section of ``params.yaml``, beside the code that builds, feeds and trains the
timm classifiers of every arm and recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from controlbreast.sections import PositiveInt, Section


class AugmentConfig(Section):
    """Random changes to each training batch (real and synthetic alike; never to val or test).

    Shifts and scale are fractions of the image side, rotation is in degrees, ``intensity`` is the
    largest relative change of contrast and of brightness, ``noise`` the std of added Gaussian
    noise as a fraction of the intensity range.
    """

    hflip: bool = True
    max_shift: Annotated[float, Field(ge=0.0, le=0.5)] = 0.06
    max_rotation: Annotated[float, Field(ge=0.0, le=180.0)] = 10.0
    max_scale: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.15
    noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02


RECIPE_NAME = r"^[a-z][a-z0-9+_-]*$"


class RecipeConfig(Section):
    """A named arm beside the built-in ones (``mixing.Recipe``): which real and synthetic images it
    trains on and how. ``real``: ``once``, ``repeat`` (the real images drawn again up to the
    ``real+synthetic`` arm's count: the same-count control) or ``none``; ``synthetic``: ``none``,
    ``all``, ``filtered`` (kept by the label-consistency filter, ``synthetic_filter``) or ``guided``
    (the real-guided set, ``generate.guided_strength``: each image started from its source real
    image);
    ``schedule``: ``mixed``, or ``pretrain`` on the synthetic images then fine-tune on the real ones;
    ``mix_ratio``: this arm's synthetic images per real image (null: ``classifier.mix_ratio``).
    """

    real: Literal["once", "repeat", "none"] = "once"
    synthetic: Literal["none", "all", "filtered", "guided"] = "all"
    schedule: Literal["mixed", "pretrain"] = "mixed"
    augment: bool = True
    mix_ratio: Annotated[float, Field(gt=0.0, le=100.0)] | None = None

    @model_validator(mode="after")
    def _parts(self) -> RecipeConfig:
        if self.real == "repeat" and self.synthetic != "none":
            raise ValueError("real: repeat is the same-count control for synthetic images: use it with "
                             "synthetic: none")
        if self.schedule == "pretrain" and (self.synthetic == "none" or self.real == "none"):
            raise ValueError("schedule: pretrain needs synthetic images to pretrain on and real ones to "
                             "fine-tune on")
        if self.real == "none" and self.synthetic == "none":
            raise ValueError("a recipe with real: none and synthetic: none trains on nothing")
        return self


class ClassifierConfig(Section):
    """``train-classifier``: a timm backbone per arm and seed, chosen on the validation split.

    ``model`` is any timm name, built with ``in_chans=1`` and ``model_kwargs`` (the default narrows
    resnet10t to fit the CPU budget); ``pretrained`` is a local safetensors or PyTorch weights file,
    never a download. Arms: ``real``; ``real+synthetic`` adds ``round(mix_ratio * n_real)``
    synthetic images to the ``n_real`` real training images (drawn from ``paths.synthetic`` with
    each seed, without replacement);
    ``synthetic`` trains on as many synthetic images as the real training split has. Early stopping
    and the kept epoch follow the validation split's macro AUC (``patience`` epochs without gain).
    ``balance``: class ``weights`` in the loss, a balanced ``sampler``, or ``none``. ``threads``: torch
    CPU threads (0: torch's default); a model this small runs fastest on one, and far faster than on
    two when another process shares the cores. ``workers``: processes training a stage's seeds and
    arms side by side (the same models as one after another, in less time on several cores).

    ``synthetic_draw``: ``per_class`` draws ``round(ratio * n_c)`` synthetic images of each class c
    (the same synthetic:real ratio in every class, so the source is no shortcut to the class);
    ``pooled`` draws uniformly from the whole set. ``recipes``: named arms (``RecipeConfig``), each
    trained at every real fraction and compared with ``real`` on the same seeds and resamples;
    ``pretrain_epochs``: the synthetic phase of a ``schedule: pretrain`` recipe.

    ``real_fractions``: the data-efficiency curve. For each fraction below 1, the ``real`` and
    ``real+synthetic`` arms are trained again on a nested, group-aware, class-stratified subset of the
    real training split (``data.splits.nested_subsets`` with ``subset_seed``; the same subset for
    every arm and seed), ``real+synthetic`` drawing only synthetic images made from that subset's
    controls. Fraction 1 is the ordinary arms. ``fraction_generator``: ``whole``, the one generator
    (base and ControlNet, class embedding included) trained on the whole training split serves every
    fraction, so a low-data arm draws on every training label through it; ``subset`` trains a
    generator per fraction below 1 on that subset alone (``train-fraction-generators``), and the
    fraction's arms draw its set: "at 42 real images" then means 42 labelled images in all (the
    recipes then draw ``synthetic: all`` or none).
    """

    model: str = "resnet10t"
    model_kwargs: dict[str, Any] = Field(
        default_factory=lambda: {"channels": [16, 32, 64, 128], "stem_width": 8})
    pretrained: Path | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    mix_ratio: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    epochs: PositiveInt = 10
    patience: PositiveInt = 4
    batch_size: PositiveInt = 32
    learning_rate: Annotated[float, Field(gt=0.0)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4
    balance: Literal["weights", "sampler", "none"] = "weights"
    augment: AugmentConfig = AugmentConfig()
    threads: Annotated[int, Field(ge=0, le=256)] = 1
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    registry: bool = True
    real_fractions: tuple[float, ...] = (0.5, 1.0)
    subset_seed: int = 0
    synthetic_draw: Literal["per_class", "pooled"] = "per_class"
    fraction_generator: Literal["whole", "subset"] = "whole"
    pretrain_epochs: PositiveInt = 5
    recipes: dict[Annotated[str, Field(pattern=RECIPE_NAME)], RecipeConfig] = Field(default_factory=lambda: {
        "real-repeat": RecipeConfig(real="repeat", synthetic="none"),
        "real+filtered": RecipeConfig(synthetic="filtered"),
        "synthetic-then-real": RecipeConfig(schedule="pretrain"),
        "real+guided": RecipeConfig(synthetic="guided")})

    @model_validator(mode="after")
    def _seeds(self) -> ClassifierConfig:
        clash = sorted(set(self.recipes) & {"real", "real-noaug", "real+synthetic", "synthetic"})
        if clash:
            raise ValueError(f"recipes {clash} would replace built-in arms: give them other names")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be one or more distinct integers")
        if any(not 0.0 < f <= 1.0 for f in self.real_fractions) or \
                len(set(self.real_fractions)) != len(self.real_fractions):
            raise ValueError("real_fractions must be distinct numbers in (0, 1], got "
                             f"{list(self.real_fractions)}")
        other_sets = sorted(name for name, r in self.recipes.items() if r.synthetic in ("filtered", "guided"))
        if self.fraction_generator == "subset" and other_sets:
            raise ValueError(f"fraction_generator: subset gives each fraction its own synthetic set, but "
                             f"recipes {other_sets} draw the filtered or real-guided set of the whole split: "
                             "remove them or use fraction_generator: whole")
        if self.model.lower().startswith(("hf-hub:", "hf_hub:")):
            raise ValueError(f"model {self.model!r} would be fetched from the Hugging Face Hub; give a timm "
                             "architecture name and a local `pretrained` weights file")
        return self
