"""Memorisation: how close each synthetic image comes to its nearest training image.

Two views: cosine similarity of domain features (the real-only classifier's penultimate layer,
centred on the training mean: "the same image to a diagnostician's eye") and SSIM of the pixels
(Wang et al., 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid region only, as in
the reference MATLAB code).
The same figures for real validation images against the training split, which no generator has
seen, say what "close" means for this data; a synthetic image nearer than that to a training image
is a likely copy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

QUANTILES = {"min": 0.0, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}


def nearest_cosine(queries: torch.Tensor, references: torch.Tensor,
                   centre: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query (N, D): the highest cosine similarity to a reference (M, D), and its index.

    ``centre`` (D,) is subtracted from both first: post-ReLU features share a large common
    component that makes every pair's plain cosine close to 1.
    """
    if centre is not None:
        queries, references = queries - centre, references - centre
    similarity = F.normalize(queries.double(), dim=1) @ F.normalize(references.double(), dim=1).T
    best = similarity.max(dim=1)
    return best.values.numpy(), best.indices.numpy()


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-offsets**2 / (2 * sigma**2))
    return weights / weights.sum()


def _band(length: int, window: torch.Tensor) -> torch.Tensor:
    """(length - k + 1, length) matrix whose product with a signal is its valid 1-D filtering."""
    rows = length - len(window) + 1
    band = torch.zeros(rows, length, dtype=torch.float32)
    for row in range(rows):
        band[row, row:row + len(window)] = window
    return band


def nearest_ssim(queries: np.ndarray, references: np.ndarray,
                 budget: int = 20_000_000) -> tuple[np.ndarray, np.ndarray]:
    """For each query (N, H, W) uint8: the highest mean SSIM to a reference (M, H, W) uint8, and its
    index. Queries go in chunks of about ``budget`` pixel pairs (memory: ~10 floats per pair).

    The Gaussian filter is two banded matrix products (BLAS is far faster than a one-channel
    convolution here); float32 on [0, 1] intensities agrees with float64 to ~1e-7.
    """
    window = _window()
    rows, cols = _band(references.shape[1], window), _band(references.shape[2], window).T.contiguous()

    def blur(images: torch.Tensor) -> torch.Tensor:
        return rows @ images @ cols

    c1, c2 = 0.01**2, 0.03**2
    chunk = max(1, budget // references[0].size // len(references))
    refs = torch.from_numpy(references).float() / 255.0
    mu_r = blur(refs)
    var_r = blur(refs**2) - mu_r**2
    values, indices = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(queries[start:start + chunk]).float()[:, None] / 255.0
        mu_q = blur(q)
        var_q = blur(q**2) - mu_q**2
        covariance = blur(q * refs[None]) - mu_q * mu_r[None]
        numerator = (2 * mu_q * mu_r[None] + c1) * (2 * covariance + c2)
        denominator = (mu_q**2 + mu_r[None]**2 + c1) * (var_q + var_r[None] + c2)
        best = (numerator / denominator).mean(dim=(-2, -1)).double().max(dim=1)
        values.append(best.values.numpy())
        indices.append(best.indices.numpy())
    return np.concatenate(values), np.concatenate(indices)


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean SSIM of two (H, W) uint8 images."""
    return float(nearest_ssim(first[None], second[None])[0][0])


def distribution(values: np.ndarray, threshold: float) -> dict[str, float]:
    """Quantiles of ``values`` and the fraction at or above ``threshold``."""
    out = {name: float(np.quantile(values, q)) for name, q in QUANTILES.items()}
    return out | {"mean": float(values.mean()), "threshold": float(threshold),
                  "fraction_above_threshold": float((values >= threshold).mean())}
