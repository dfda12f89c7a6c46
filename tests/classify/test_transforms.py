"""Augmentation of training batches and the shared input preparation."""

import numpy as np
import torch

from controlbreast.classify.config import AugmentConfig
from controlbreast.classify.models import ModelCard
from controlbreast.classify.transforms import Augment, decode_image, fit_images, normalise, scale
from controlbreast.data.imageio import encode_png
from controlbreast.data.preprocess import fit_to_square

CARD = ModelCard(model="resnet10t", classes=("a", "b"), image_size=16, resize="pad", mean=0.5, std=0.25)


def batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_no_augmentation_settings_leave_the_batch_unchanged():
    still = AugmentConfig(hflip=False, max_shift=0, max_rotation=0, max_scale=0, intensity=0, noise=0)
    torch.testing.assert_close(Augment(still)(batch(), torch.Generator()), batch(), atol=1e-6, rtol=0)


def test_augmentation_is_seeded_changes_images_and_stays_in_range():
    augment = Augment(AugmentConfig())
    first = augment(batch(), torch.Generator().manual_seed(1))
    again = augment(batch(), torch.Generator().manual_seed(1))
    other = augment(batch(), torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other) and not torch.allclose(first, batch())
    assert first.min() >= 0 and first.max() <= 1 and first.shape == batch().shape


def test_flip_only_mirrors_some_images_exactly():
    flips = Augment(AugmentConfig(max_shift=0, max_rotation=0, max_scale=0, intensity=0, noise=0))
    out = flips(batch(), torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(o, b.flip(-1), atol=1e-6) for o, b in zip(out, batch(), strict=True)]
    kept = [torch.allclose(o, b, atol=1e-6) for o, b in zip(out, batch(), strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)


def test_preparation_fits_scales_and_normalises_like_ingest():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (10, 30), dtype=np.uint8)
    same = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    fitted = fit_images([wide, same], CARD)
    np.testing.assert_array_equal(fitted[0], fit_to_square(wide, 16, "pad"))
    np.testing.assert_array_equal(fitted[1], same)
    inputs = normalise(scale(fitted), CARD)
    assert inputs.shape == (2, 1, 16, 16)
    torch.testing.assert_close(inputs[1, 0], (torch.from_numpy(same).float() / 255 - 0.5) / 0.25)
    np.testing.assert_array_equal(decode_image(encode_png(same), "x.png"), same)
