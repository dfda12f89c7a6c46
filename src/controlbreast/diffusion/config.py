"""The ``diffusion``, ``train_base``/``train_controlnet`` and ``sampling`` sections of
``params.yaml``, beside the back ends, the training loop and the sampler that read them
(``generate`` reuses ``SamplingConfig`` for the synthetic set's sampler)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from controlbreast.sections import Fraction, PositiveInt, Section


class PixelModelConfig(Section):
    """The ``pixel`` back end: a class-conditional UNet on 1-channel images, trained from scratch.

    ``attention`` says, per resolution level, whether the block has (cross-)attention; on a CPU,
    self-attention at high resolution is what costs, so the default keeps it at the lowest level.
    ``control_embedding_channels`` is the width of the ControlNet's control encoder; diffusers' encoder
    halves the resolution once per extra stage, and a pixel model's control already has the UNet's
    size, so it has a single stage here.
    """

    block_out_channels: tuple[PositiveInt, ...] = (16, 32, 64, 64)
    attention: tuple[bool, ...] = (False, False, False, True)
    layers_per_block: Annotated[int, Field(ge=1, le=4)] = 1
    cross_attention_dim: PositiveInt = 64
    attention_head_dim: PositiveInt = 8
    norm_num_groups: PositiveInt = 8
    control_embedding_channels: PositiveInt = 16

    @model_validator(mode="after")
    def _levels(self) -> PixelModelConfig:
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError("attention needs one entry per block_out_channels level")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError("every block_out_channels entry must be a multiple of norm_num_groups")
        return self


class LatentModelConfig(Section):
    """The ``latent`` back end: a pretrained Stable-Diffusion-style model, never downloaded.

    ``pretrained`` is a local folder in diffusers layout (vae/, text_encoder/, tokenizer/, unet/,
    scheduler/) or a repo id already in the user's Hugging Face cache. ``prompts`` gives each class
    its text; the null (unconditional) prompt is empty. ``lora_rank`` > 0 fine-tunes the UNet on
    the domain with LoRA in ``train_base``; 0 uses it as it is.
    """

    pretrained: str | None = None
    controlnet: str | None = None
    prompts: dict[str, str] = Field(default_factory=lambda: {
        "normal": "a breast ultrasound image of normal tissue",
        "benign": "a breast ultrasound image with a benign lesion",
        "malignant": "a breast ultrasound image with a malignant lesion"})
    lora_rank: Annotated[int, Field(ge=0, le=256)] = 8


class DiffusionConfig(Section):
    """What is shared by both back ends and both training stages: the noise process and its target.

    ``label_dropout`` replaces that fraction of labels by the null class so that one model learns
    both the conditional and the unconditional score (classifier-free guidance). ``snr_gamma``
    enables min-SNR loss weighting (Hang et al., 2023); null trains on the plain MSE.
    ``zero_terminal_snr`` rescales the pixel back end's betas so the last timestep is pure noise (Lin
    et al., 2024: the model then learns to start from what sampling starts from; the cosine schedule
    already ends at alpha_bar ~ 2e-9, a linear one at ~4e-5); it needs ``v_prediction``.
    ``control_dropout`` replaces that fraction of the ControlNet stage's controls by an all-zero
    control, so that control guidance has a learnt null (``sampling.control_null``).
    """

    backend: Literal["pixel", "latent"] = "pixel"
    prediction_type: Literal["epsilon", "v_prediction"] = "v_prediction"
    num_train_timesteps: Annotated[int, Field(ge=10, le=10000)] = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    snr_gamma: Annotated[float, Field(gt=0.0)] | None = None
    zero_terminal_snr: bool = False
    label_dropout: Fraction = 0.1
    control_dropout: Fraction = 0.0
    hflip: bool = True
    pixel: PixelModelConfig = PixelModelConfig()
    latent: LatentModelConfig = LatentModelConfig()

    @model_validator(mode="after")
    def _zero_snr_target(self) -> DiffusionConfig:
        if self.zero_terminal_snr and self.prediction_type != "v_prediction":
            raise ValueError("zero_terminal_snr needs prediction_type: v_prediction (at zero SNR the noise "
                             "is the input itself, so an epsilon target teaches nothing)")
        return self


class TrainConfig(Section):
    """One training stage (``train_base`` or ``train_controlnet``); steps count optimizer updates.

    Checkpoints go to ``<paths.checkpoints>/<stage>/checkpoint-<step>`` every ``checkpoint_every``
    steps, the last ``keep_checkpoints`` kept. Every ``validate_every`` steps a validation grid and
    (for the ControlNet) the control-fidelity figure are logged. The run stops with a clear error
    when the loss is not finite or exceeds ``divergence_factor`` times its running mean.
    """

    steps: PositiveInt = 200
    batch_size: PositiveInt = 16
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    lr_warmup_steps: Annotated[int, Field(ge=0)] = 20
    adam_weight_decay: Annotated[float, Field(ge=0.0)] = 1e-2
    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    gradient_accumulation_steps: PositiveInt = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    ema_decay: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    checkpoint_every: PositiveInt = 100
    keep_checkpoints: PositiveInt = 2
    validate_every: PositiveInt = 100
    num_validation: Annotated[int, Field(ge=1, le=64)] = 6
    log_every: PositiveInt = 10
    divergence_factor: Annotated[float, Field(gt=1.0)] = 100.0
    threads: Annotated[int, Field(ge=0, le=256)] = 0


class SamplingConfig(Section):
    """How images are drawn: scheduler, steps, classifier-free guidance and ControlNet strength.

    ``controlnet_scale`` multiplies the ControlNet's residuals. ``control_guidance`` is guidance on
    the control alone: the prediction moves away from the base UNet's (no ControlNet) by this
    factor, as classifier-free guidance moves it away from the null class; 1 is off, and above 1
    costs one more copy of the batch per forward. ``control_null`` is what "without the control"
    means: ``base`` (the UNet alone) or ``empty`` (the ControlNet given an all-zero control, which it
    has learnt only when trained with ``diffusion.control_dropout`` > 0).
    """

    scheduler: Literal["ddim", "unipc", "dpmsolver++"] = "ddim"
    steps: Annotated[int, Field(ge=1, le=1000)] = 25
    guidance_scale: Annotated[float, Field(ge=1.0, le=30.0)] = 2.0
    controlnet_scale: Annotated[float, Field(ge=0.0, le=5.0)] = 1.0
    control_guidance: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    control_null: Literal["base", "empty"] = "base"
    batch_size: PositiveInt = 32
