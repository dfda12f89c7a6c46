import numpy as np
import pytest

from builders import make_config
from controlbreast.controls.edges import canny_edges, canny_thresholds


def square(intensity: int = 200) -> np.ndarray:
    image = np.full((64, 64), 40, np.uint8)
    image[16:48, 16:48] = intensity
    return image


def test_edges_trace_the_boundary_of_a_square(tmp_path):
    cfg = make_config(tmp_path, controls={"blur_kernel": 0}).controls
    edges = canny_edges(square(), cfg)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}
    ys, xs = np.nonzero(edges)
    assert ys.min() >= 14 and ys.max() <= 49 and xs.min() >= 14 and xs.max() <= 49
    assert edges[30:34, 30:34].max() == 0  # nothing inside the flat region


def test_automatic_thresholds_follow_the_median(tmp_path):
    cfg = make_config(tmp_path).controls
    dark, bright = np.full((8, 8), 50, np.uint8), np.full((8, 8), 150, np.uint8)
    assert canny_thresholds(dark, cfg) == (33, 66)
    assert canny_thresholds(bright, cfg) == (100, 199)


def test_fixed_thresholds_and_blur(tmp_path):
    fixed = make_config(tmp_path, controls={"canny_low": 10, "canny_high": 20}).controls
    assert canny_thresholds(square(), fixed) == (10, 20)
    rng = np.random.default_rng(0)
    speckled = np.clip(square().astype(float) * rng.rayleigh(0.8, (64, 64)), 0, 255).astype(np.uint8)
    raw = make_config(tmp_path, controls={"blur_kernel": 0}).controls
    blurred = make_config(tmp_path, controls={"blur_kernel": 7}).controls
    assert (canny_edges(speckled, blurred) > 0).sum() < (canny_edges(speckled, raw) > 0).sum()


@pytest.mark.parametrize("kind", ["edges", "mask", "edges+mask"])
def test_kind_channels(tmp_path, kind):
    assert make_config(tmp_path, controls={"kind": kind}).controls.channels == tuple(kind.split("+"))
