import torch

from builders import TINY_PIXEL
from controlbreast.diffusion.config import PixelModelConfig
from controlbreast.diffusion.models import ClassEmbedding, Denoiser, controlnet_from_unet, pixel_unet


def _tiny_denoiser() -> Denoiser:
    torch.manual_seed(0)
    unet = pixel_unet(PixelModelConfig(**TINY_PIXEL), image_size=16)
    return Denoiser(unet, ClassEmbedding(num_classes=3, dim=16),
                    controlnet_from_unet(unet, control_channels=1, embedding_channels=(8,)))


def test_controlnet_starts_silent_then_its_residuals_steer_the_unet():
    denoiser = _tiny_denoiser()
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(4, 1, 16, 16, generator=generator)
    timesteps, labels = torch.tensor([10, 200, 500, 900]), torch.tensor([0, 1, 2, 3])
    control = (torch.rand(4, 1, 16, 16, generator=generator) > 0.8).float()
    without = denoiser(sample, timesteps, labels, control=None)
    # zero convolutions: a fresh ControlNet adds exactly nothing
    assert torch.equal(denoiser(sample, timesteps, labels, control), without)

    denoiser.unet.requires_grad_(False)
    optimizer = torch.optim.AdamW(denoiser.controlnet.parameters(), lr=1e-2)
    for _ in range(3):
        loss = (denoiser(sample, timesteps, labels, control) - sample).pow(2).mean()
        loss.backward()
        zero_convs = [*denoiser.controlnet.controlnet_down_blocks.parameters(),
                      *denoiser.controlnet.controlnet_mid_block.parameters()]
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in zero_convs)
        assert all(p.grad is None for p in denoiser.unet.parameters())
        optimizer.step()
        optimizer.zero_grad()

    with torch.no_grad():
        steered = denoiser(sample, timesteps, labels, control)
        other = denoiser(sample, timesteps, labels, control.flip(-1))
        assert not torch.allclose(steered, without, atol=1e-4)
        assert not torch.allclose(steered, other, atol=1e-4)  # the output depends on the control
        assert torch.equal(denoiser(sample, timesteps, labels, None), without)  # the UNet is untouched


def test_class_embedding_has_a_null_row_for_guidance():
    table = ClassEmbedding(num_classes=3, dim=8, tokens=2)
    assert table.null_label == 3
    assert table(torch.tensor([0, 3])).shape == (2, 2, 8)
