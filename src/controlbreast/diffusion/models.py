"""The networks both back ends share: class conditioning, the pixel UNet, ControlNet, and the
``Denoiser`` that wires them together.

Class conditioning is a sequence: ``ClassEmbedding`` maps a label to (tokens, dim) vectors that the
UNet (and the ControlNet) read through cross-attention, exactly where a text encoder's output goes in
Stable Diffusion. The pixel back end learns the table; the latent back end fills it once with the
text encoder's embedding of each class prompt, so sampling never needs the text encoder. The last
row is the null class of classifier-free guidance.
"""

from __future__ import annotations

import torch
from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from controlbreast.diffusion.config import DiffusionConfig, PixelModelConfig


class ClassEmbedding(ModelMixin, ConfigMixin):
    """Labels → the conditioning sequence; row ``num_classes`` is the null (unconditional) class.

    ``forward(labels)``: (N,) int64 → (N, tokens, dim).
    """

    @register_to_config
    def __init__(self, num_classes: int, dim: int, tokens: int = 1):
        super().__init__()
        self.table = nn.Parameter(torch.randn(num_classes + 1, tokens, dim) * 0.02)

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table[labels]


def pixel_unet(cfg: PixelModelConfig, image_size: int, channels: int = 1) -> UNet2DConditionModel:
    """A UNet on ``channels``-channel images, cross-attention only at the levels ``cfg.attention``."""
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=channels, out_channels=channels,
        block_out_channels=cfg.block_out_channels, layers_per_block=cfg.layers_per_block,
        down_block_types=down, up_block_types=up, mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=cfg.cross_attention_dim, attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups)


def controlnet_from_unet(unet: UNet2DConditionModel, control_channels: int,
                         embedding_channels: tuple[int, ...]) -> ControlNetModel:
    """A ControlNet whose encoder starts as a copy of the UNet's, and zero convolutions at zero.

    ``embedding_channels`` sets the control encoder: the control is downsampled 2x per entry after
    the first, so it must have ``2 ** (len - 1)`` times the UNet's sample size.
    """
    return ControlNetModel.from_unet(unet, conditioning_channels=control_channels,
                                     conditioning_embedding_out_channels=embedding_channels)


def noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The pixel back end's forward (noising) process; samplers are built from its config.

    ``clip_sample`` keeps each step's estimate of the clean image inside the images' range [-1, 1].
    Without it, an epsilon model sampled from the last timestep (where the cosine schedule leaves
    almost no signal) divides by ``sqrt(alpha_bar) ~ 0`` at the first step, and the samples end as
    saturated salt-and-pepper noise that no later step repairs.
    """
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type=cfg.prediction_type, clip_sample=True, clip_sample_range=1.0,
                         rescale_betas_zero_snr=cfg.zero_terminal_snr)


class Denoiser(nn.Module):
    """UNet + class conditioning (+ ControlNet): the one network that training and sampling call.

    ``forward(sample, timesteps, labels, control)``: sample (N, c, h, w) noisy latents or images,
    timesteps (N,), labels (N,) int64, control (N, C, H, W) in [0, 1] or None → the UNet's
    prediction (N, c, h, w). The ControlNet's residuals enter the UNet's down and mid blocks; without
    that wiring its zero convolutions would never receive a gradient. ``controlnet_scale`` scales
    them: a number, or (N, 1, 1, 1) for one scale per row (0: the base UNet's prediction).
    """

    def __init__(self, unet: UNet2DConditionModel, class_embedding: ClassEmbedding,
                 controlnet: ControlNetModel | None = None):
        super().__init__()
        self.unet, self.class_embedding, self.controlnet = unet, class_embedding, controlnet

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor,
                control: torch.Tensor | None = None,
                controlnet_scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        context = self.class_embedding(labels).to(sample.dtype)
        residuals = {}
        if self.controlnet is not None and control is not None:
            down, mid = self.controlnet(sample, timesteps, encoder_hidden_states=context,
                                        controlnet_cond=self.control_input(control, sample.dtype),
                                        conditioning_scale=controlnet_scale, return_dict=False)
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.unet(sample, timesteps, encoder_hidden_states=context, **residuals).sample

    def control_input(self, control: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(N, C, H, W) control as the ControlNet takes it: an edge map (C = 1) repeated for an
        RGB-trained ControlNet, in the sample's dtype."""
        wanted = self.controlnet.config.conditioning_channels
        if control.shape[1] == 1 and wanted != 1:
            control = control.expand(-1, wanted, -1, -1)
        return control.to(dtype)
