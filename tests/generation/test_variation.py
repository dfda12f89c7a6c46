"""Control variation: explicit, reproducible from its JSON, binary in and out."""

import cv2
import numpy as np

from controlbreast.generation.config import VariationConfig
from controlbreast.generation.variation import Variation, apply_variation, draw_variation


def edge_control(size: int = 48) -> np.ndarray:
    """(1, S, S) 0/255 edge map: an off-centre ring and a line."""
    plane = np.zeros((size, size), np.uint8)
    cv2.circle(plane, (30, 18), 9, 255, 1)
    cv2.line(plane, (5, 40), (25, 35), 255, 1)
    return plane[None]


def test_no_variation_returns_the_control_itself():
    control = edge_control()
    assert np.array_equal(apply_variation(control, Variation(), ("edges",)), control)
    off = VariationConfig(hflip=False, max_rotation=0, max_scale=0, max_shift=0)
    assert draw_variation(off, seed=5).is_identity


def test_a_flip_alone_mirrors_exactly():
    control = edge_control()
    flipped = apply_variation(control, Variation(hflip=True), ("edges",))
    assert np.array_equal(flipped, control[..., ::-1])


def test_a_shift_moves_the_edges_and_keeps_them_binary():
    control = edge_control()
    shifted = apply_variation(control, Variation(shift_x=0.125), ("edges",))  # 6 px right
    assert set(np.unique(shifted)) <= {0, 255}
    assert np.array_equal(shifted[0, :, 6:], control[0, :, :-6])


def test_rotation_and_elastic_warps_keep_most_of_the_edges():
    control = edge_control()
    varied = apply_variation(control, Variation(rotation=4.0, scale=1.03, elastic_alpha=1.0, elastic_seed=3),
                             ("edges",))
    assert set(np.unique(varied)) <= {0, 255}
    assert 0.5 < (varied > 0).sum() / (control > 0).sum() < 2.0
    assert not np.array_equal(varied, control)


def test_draws_are_reproducible_from_the_seed_and_the_json():
    cfg = VariationConfig(max_rotation=10, elastic_alpha=2.0)
    first = draw_variation(cfg, seed=11)
    assert first == draw_variation(cfg, seed=11) != draw_variation(cfg, seed=12)
    assert Variation.from_json(first.to_json()) == first
    control = edge_control()
    assert np.array_equal(apply_variation(control, first, ("edges",)),
                          apply_variation(control, Variation.from_json(first.to_json()), ("edges",)))


def test_switching_one_option_off_leaves_the_other_draws():
    on = draw_variation(VariationConfig(max_rotation=10, hflip=True), seed=3)
    off = draw_variation(VariationConfig(max_rotation=10, hflip=False), seed=3)
    assert off.hflip is False
    assert (on.rotation, on.scale, on.shift_x) == (off.rotation, off.scale, off.shift_x)
    assert abs(on.rotation) <= 10 and abs(on.scale - 1) <= 0.05
