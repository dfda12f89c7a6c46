"""Control fidelity measures: boundary F1 with a tolerance, and dark-region Dice for mask controls."""

import cv2
import numpy as np

from builders import make_config
from controlbreast.controls.fidelity import dark_region, dice, edge_f1, mask_dice, outline, shuffled
from controlbreast.evaluation.synthetic import control_fidelity


def disc(centre: tuple[int, int], radius: int = 8, size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, centre, radius, 255, -1)
    return mask


def lesion_image(mask: np.ndarray, seed: int) -> np.ndarray:
    """Mid-grey speckled tissue with a dark (hypoechoic) lesion where ``mask`` is set."""
    rng = np.random.default_rng(seed)
    image = rng.normal(150, 12, mask.shape)
    image[mask > 0] = rng.normal(40, 12, int((mask > 0).sum()))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_edge_f1_tolerates_small_shifts_but_not_other_places():
    edges = outline(disc((32, 32)))
    assert edge_f1(edges, edges) == 1.0
    assert edge_f1(np.roll(edges, 1, axis=1), edges, tolerance=2) == 1.0
    assert edge_f1(outline(disc((12, 12), 6)), edges) == 0.0
    assert edge_f1(np.zeros_like(edges), np.zeros_like(edges)) == 1.0


def test_shuffled_never_leaves_an_image_with_its_own_control():
    order = shuffled(7, seed=3)
    assert sorted(order) == list(range(7)) and not (order == np.arange(7)).any()


def test_dice_of_the_dark_region_finds_a_hypoechoic_lesion_at_its_mask():
    mask = disc((40, 24))
    image = lesion_image(mask, seed=0)
    assert dice(dark_region(image), mask > 0) > 0.9
    assert dice(dark_region(image), disc((16, 44)) > 0) < 0.1
    assert dice(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_mask_dice_is_nan_for_empty_masks_and_matched_beats_shuffled(tmp_path):
    masks = np.stack([disc((20 + 8 * k, 20 + 5 * k)) for k in range(4)] + [np.zeros((64, 64), np.uint8)])
    images = np.stack([lesion_image(mask, seed=k) for k, mask in enumerate(masks)])
    controls = masks[:, None]
    scores = mask_dice(images, controls, ("mask",))
    assert np.isnan(scores[-1]) and (scores[:-1] > 0.8).all()
    config = make_config(tmp_path, controls={"kind": "mask"}, data={"classes": ["benign", "malignant"]})
    labels = np.array([0, 0, 1, 1, 1])
    report = control_fidelity(images, controls, labels, config)["mask_dice"]
    assert report["images"] >= 2 and report["matched"] > 0.8 and report["ratio"] > 2
