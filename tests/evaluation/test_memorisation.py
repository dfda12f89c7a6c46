"""Nearest training images by SSIM and by feature cosine."""

import cv2
import numpy as np
import torch

from builders import smooth_image
from controlbreast.evaluation.memorisation import distribution, nearest_cosine, nearest_ssim, ssim


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM written out with OpenCV filters (Wang et al. 2004, valid region), to check ours against."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    window = cv2.getGaussianKernel(11, 1.5)
    kernel = window @ window.T

    def filtered(x):
        return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_a, mu_b = filtered(a), filtered(b)
    var_a, var_b = filtered(a * a) - mu_a**2, filtered(b * b) - mu_b**2
    cov = filtered(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) /
                  ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean())


def images(count: int, start: int = 0) -> np.ndarray:
    return np.stack([smooth_image(start + i, (40, 40)) for i in range(count)])


def noisy(image: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, std, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def test_ssim_matches_the_written_out_formula_and_is_one_on_itself():
    a, b = images(2)
    assert abs(ssim(a, a) - 1.0) < 1e-6
    assert abs(ssim(a, b) - reference_ssim(a, b)) < 1e-5
    assert abs(ssim(a, noisy(a, 20)) - reference_ssim(a, noisy(a, 20))) < 1e-5
    assert ssim(a, b) == ssim(b, a)


def test_nearest_ssim_finds_a_noisy_copy_among_many():
    references = images(30)
    queries = np.stack([noisy(references[7], 10), noisy(references[21], 10, seed=1), images(1, 99)[0]])
    values, index = nearest_ssim(queries, references, budget=40 * 40 * 30)  # one query per chunk
    assert list(index[:2]) == [7, 21]
    assert values[0] > 0.7 and values[1] > 0.7 and values[2] < values[0]
    whole, _ = nearest_ssim(queries, references)
    np.testing.assert_allclose(whole, values)


def test_nearest_cosine_finds_the_exact_copy():
    references = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    queries = torch.stack([references[3] * 2.0, references[40] + 0.01])
    values, index = nearest_cosine(queries, references)
    assert list(index) == [3, 40]
    assert abs(values[0] - 1.0) < 1e-12 and values[1] > 0.99


def test_distribution_reports_quantiles_and_the_fraction_over_the_threshold():
    summary = distribution(np.array([0.1, 0.5, 0.9, 0.95]), threshold=0.9)
    assert summary["min"] == 0.1 and summary["max"] == 0.95 and summary["p50"] == 0.7
    assert summary["fraction_above_threshold"] == 0.5
