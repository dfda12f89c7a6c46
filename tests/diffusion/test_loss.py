"""Every recipe option of the denoising loss on a tiny model: what it changes, and that it still trains.

The options (min-SNR weighting, v-prediction, a zero-terminal-SNR schedule, control dropout) are
measured on the trained default by ``benchmarks/recipe.py``; here each is checked for its own
meaning on a tiny ControlNet and a fixed batch.
"""

import pytest
import torch

from builders import tiny_denoiser
from controlbreast.config import parse_config
from controlbreast.diffusion.backends import PixelCodec
from controlbreast.diffusion.config import DiffusionConfig, SamplingConfig
from controlbreast.diffusion.models import Denoiser, noise_scheduler
from controlbreast.diffusion.sampling import generate
from controlbreast.diffusion.train import diffusion_loss
from controlbreast.errors import ConfigError

OPTIONS = {"epsilon": {"prediction_type": "epsilon"}, "min-snr": {"snr_gamma": 5.0},
           "v-prediction": {"prediction_type": "v_prediction"},
           "zero-terminal-snr": {"prediction_type": "v_prediction", "zero_terminal_snr": True},
           "control-dropout": {"control_dropout": 0.5}}


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (4, 1, 32, 32) in [-1, 1], labels (4,), edge-like controls (4, 1, 32, 32)."""
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(4, 1, 32, 32, generator=generator) * 2 - 1
    controls = (torch.rand(4, 1, 32, 32, generator=generator) > 0.8).float()
    return images, torch.tensor([0, 1, 2, 0]), controls


def loss(denoiser: Denoiser, cfg: DiffusionConfig, controls: torch.Tensor, seed: int = 0) -> torch.Tensor:
    images, labels, _ = batch()
    return diffusion_loss(denoiser, noise_scheduler(cfg), images, labels, controls,
                          torch.Generator().manual_seed(seed), cfg, denoiser.class_embedding.null_label)


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_trains_a_tiny_controlnet(option):
    denoiser, cfg = tiny_denoiser().train(), DiffusionConfig(**OPTIONS[option])
    optimizer = torch.optim.Adam(denoiser.controlnet.parameters(), lr=3e-3)
    controls = batch()[2]
    losses = []
    for _ in range(25):  # the same draws every step: the loss on them must fall
        value = loss(denoiser, cfg, controls)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses))) and losses[-1] < 0.8 * losses[0]


def test_a_dropped_control_is_an_empty_one_and_no_dropout_draws_nothing_more():
    denoiser, controls = tiny_denoiser(), batch()[2]
    with torch.no_grad():
        dropped = loss(denoiser, DiffusionConfig(control_dropout=1.0), controls)
        empty = loss(denoiser, DiffusionConfig(), torch.zeros_like(controls))
        kept = loss(denoiser, DiffusionConfig(), controls)
    torch.testing.assert_close(dropped, empty, rtol=0, atol=1e-6)  # same noise and timesteps: drawn last
    assert abs(kept - empty) > 1e-5  # the control matters (the tolerance above is tighter than this)


def test_min_snr_weights_only_clip_high_snr_steps():
    denoiser, controls = tiny_denoiser(), batch()[2]
    epsilon = {"prediction_type": "epsilon"}
    with torch.no_grad():
        plain = loss(denoiser, DiffusionConfig(**epsilon), controls, seed=1)
        unclipped = loss(denoiser, DiffusionConfig(**epsilon, snr_gamma=1e9), controls, seed=1)
        clipped = loss(denoiser, DiffusionConfig(**epsilon, snr_gamma=0.5), controls, seed=1)
    torch.testing.assert_close(plain, unclipped)  # min(snr, gamma) / snr = 1 when gamma is above every snr
    assert clipped < plain  # epsilon weights min(snr, gamma) / snr <= 1


def test_zero_terminal_snr_ends_in_pure_noise_and_samples_finite_images():
    # the default cosine schedule already ends at alpha_bar ~ 2e-9; a linear one (SD's) does not
    linear = DiffusionConfig(prediction_type="v_prediction", beta_schedule="linear")
    scheduler = noise_scheduler(linear.model_copy(update={"zero_terminal_snr": True}))
    assert scheduler.alphas_cumprod[-1] < 1e-9 and noise_scheduler(linear).alphas_cumprod[-1] > 1e-5
    for kind in ("ddim", "unipc", "dpmsolver++"):
        images = generate(tiny_denoiser(), PixelCodec(), scheduler, torch.tensor([0, 2]), [1, 2], (1, 32, 32),
                          SamplingConfig(scheduler=kind, steps=3, guidance_scale=2.0), batch()[2][:2])
        assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_zero_terminal_snr_with_an_epsilon_target_is_refused_by_name():
    with pytest.raises(ConfigError, match="zero_terminal_snr needs prediction_type: v_prediction"):
        parse_config({"diffusion": {"prediction_type": "epsilon", "zero_terminal_snr": True}},
                     "params.yaml")
