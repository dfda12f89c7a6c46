"""The phantom generator: reproducible, patient-consistent, and BI-RADS-like where it matters."""

from __future__ import annotations

import hashlib
import pickle

import cv2
import numpy as np
import pytest

from controlbreast.data.config import PhantomConfig
from controlbreast.data.phantom import PHANTOM_LABELS, Scanner, phantom_candidates, render_phantom
from controlbreast.data.records import RawSample

SIZE = 128
N = 40  # lesions per class for the distribution tests


def _shape(mask: np.ndarray) -> tuple[float, float]:
    """Bounding-box height/width and solidity (area / convex hull area) of a lesion mask."""
    ys, xs = np.nonzero(mask)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(np.vstack(contours))], 1)
    return (np.ptp(ys) + 1) / (np.ptp(xs) + 1), mask.sum() / hull.sum()


def _posterior(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean intensity in a band under the central half of the lesion over the same band beside it."""
    ys, xs = np.nonzero(mask)
    top = ys.max() + 2
    rows = slice(top, min(SIZE, top + SIZE // 6))
    x0, x1 = xs.min(), xs.max()
    quarter = (x1 - x0 + 1) // 4
    below = image[rows, x0 + quarter : x1 - quarter + 1]
    beside = np.hstack(
        [image[rows, max(0, x0 - 2 * quarter) : max(0, x0 - 2)], image[rows, x1 + 3 : x1 + 2 * quarter + 1]]
    )
    return float(below.mean() / max(beside.mean(), 1.0)) if below.size and beside.size else np.nan


@pytest.fixture(scope="module")
def lesions() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    return {
        label: [render_phantom(label, seed, 0, SIZE) for seed in range(N)]
        for label in ("benign", "malignant")
    }


def test_same_arguments_give_identical_pixels_and_other_frames_differ():
    image, mask = render_phantom("malignant", 12, 1, SIZE)
    again, again_mask = render_phantom("malignant", 12, 1, SIZE)
    assert image.tobytes() == again.tobytes() and mask.tobytes() == again_mask.tobytes()
    assert not np.array_equal(image, render_phantom("malignant", 12, 2, SIZE)[0])
    assert not np.array_equal(image, render_phantom("malignant", 13, 1, SIZE)[0])
    assert not np.array_equal(image, render_phantom("benign", 12, 1, SIZE)[0])


@pytest.mark.parametrize("label", PHANTOM_LABELS)
@pytest.mark.parametrize("size", [64, 128, 200])
def test_shapes_dtypes_and_mask_coverage(label, size):
    for seed in range(5):
        image, mask = render_phantom(label, seed, 0, size)
        assert image.shape == mask.shape == (size, size)
        assert image.dtype == np.uint8 and mask.dtype == bool
        assert 20 < image.mean() < 235 and image.std() > 10  # neither blank nor saturated
        if label == "normal":
            assert not mask.any()
        else:
            assert 0.005 <= mask.mean() <= 0.30


def test_unknown_label_is_refused():
    with pytest.raises(ValueError, match="cancer"):
        render_phantom("cancer", 1, 0, SIZE)


def test_views_of_one_patient_show_the_same_lesion_and_tissue():
    views = [render_phantom("benign", 5, v, SIZE) for v in range(3)]
    areas = [m.sum() for _, m in views]
    centres = np.array([np.argwhere(m).mean(axis=0) for _, m in views])
    assert max(areas) / min(areas) < 1.6
    assert np.abs(centres - centres[0]).max() < 0.2 * SIZE
    profiles = np.array([image.mean(axis=1) for image, _ in views])  # depth profile: same layers
    other = render_phantom("benign", 6, 0, SIZE)[0].mean(axis=1)
    same = np.abs(profiles[1:] - profiles[0]).mean()
    assert same < np.abs(other - profiles[0]).mean()


def test_malignant_masses_are_less_parallel_and_less_solid(lesions):
    shapes = {label: np.array([_shape(mask) for _, mask in pairs]) for label, pairs in lesions.items()}
    benign_hw, benign_solidity = shapes["benign"].mean(axis=0)
    malignant_hw, malignant_solidity = shapes["malignant"].mean(axis=0)
    assert benign_hw < 0.85 < malignant_hw  # benign wider than tall, malignant mostly not
    assert benign_solidity > 0.93 and malignant_solidity < benign_solidity - 0.1


def test_malignant_masses_shadow_more_than_benign(lesions):
    ratio = {label: np.nanmean([_posterior(*pair) for pair in pairs]) for label, pairs in lesions.items()}
    assert ratio["malignant"] < 0.92 and ratio["malignant"] < ratio["benign"] - 0.1


def test_mean_intensity_alone_does_not_give_the_class(lesions):
    means = np.array([image.mean() for label in ("benign", "malignant") for image, _ in lesions[label]])
    truth = np.repeat([False, True], N)
    best = max(max(np.mean((means > t) == truth), np.mean((means <= t) == truth)) for t in means)
    assert best < 0.8


def test_candidates_are_sorted_grouped_and_load_pickles():
    cfg = PhantomConfig(patients_per_class=4, max_images_per_patient=3, render_size=48, seed=3)
    candidates = phantom_candidates(cfg)
    paths = [c.source_path for c in candidates]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert {c.source_label for c in candidates} == set(PHANTOM_LABELS)
    for c in candidates:
        label, name = c.source_path.split("/")[1:]
        assert c.source_label == label and c.group == f"phantom-{label}-{name.split('-')[0]}"
    per_group = {g: sum(c.group == g for c in candidates) for g in {c.group for c in candidates}}
    assert len(per_group) == 12 and set(per_group.values()) <= {1, 2, 3} and max(per_group.values()) > 1
    candidate = candidates[-1]
    sample = pickle.loads(pickle.dumps(candidate.load))()
    assert isinstance(sample, RawSample) and sample.bit_depth == 8
    assert sample.image.shape == sample.mask.shape == (48, 48)
    assert sample.sha256 == hashlib.sha256(sample.image.tobytes() + sample.mask.tobytes()).hexdigest()
    assert sample.sha256 == candidate.load().sha256


def test_load_renders_its_patient_and_view():
    cfg = PhantomConfig(patients_per_class=3, max_images_per_patient=4, render_size=64, seed=11)
    candidates = phantom_candidates(cfg)
    patient = max(sorted({c.group for c in candidates}), key=lambda g: sum(c.group == g for c in candidates))
    first, second = [c for c in candidates if c.group == patient][:2]
    sample = first.load()
    image, mask = render_phantom(*first.load.args)  # the partial holds (label, patient seed, view, size)
    assert np.array_equal(image, sample.image) and np.array_equal(mask, sample.mask)
    assert first.load.args[:2] == second.load.args[:2]  # one patient ...
    assert not np.array_equal(sample.image, second.load().image)  # ... two frames


def test_growing_the_cohort_keeps_earlier_images():
    small = phantom_candidates(PhantomConfig(patients_per_class=3, max_images_per_patient=2, render_size=40))
    large = phantom_candidates(PhantomConfig(patients_per_class=6, max_images_per_patient=2, render_size=40))
    by_path = {c.source_path: c for c in large}
    assert len(large) > len(small)
    for c in small:
        assert c.group == by_path[c.source_path].group
        assert c.load().sha256 == by_path[c.source_path].load().sha256


def test_mammography_phantom_has_two_views_both_sides_pectoral_and_lesions():
    from controlbreast.data.phantom_mammo import mammo_phantom_candidates, render_mammogram

    candidates = mammo_phantom_candidates(PhantomConfig(modality="mammography", patients_per_class=4,
                                                        render_size=128))
    assert len(candidates) == 24 and all(len([c for c in candidates if c.group == g]) == 2
                                         for g in {c.group for c in candidates})
    samples = [(c, c.load()) for c in candidates]
    assert {s.laterality for _, s in samples} == {"L", "R"} and {s.modality for _, s in samples} == {"MG"}
    for candidate, sample in samples:
        assert sample.image.dtype == np.uint16 and sample.image.shape == (128, 96)
        assert sample.image.max() <= 4095 and sample.spacing_mm == 240 / 128
        assert sample.mask.any() == (candidate.source_label != "normal")
        tissue = sample.image[:, 48:] if sample.laterality == "R" else sample.image[:, :48]
        assert tissue.mean() > 2 * np.delete(sample.image, np.s_[:48] if sample.laterality == "L"
                                             else np.s_[48:], axis=1).mean()  # chest wall side
    film, _, side = render_mammogram("normal", 5, "MLO", 128)
    cc, _, _ = render_mammogram("normal", 5, "CC", 128)
    corner = (slice(0, 20), slice(0, 12) if side == "L" else slice(84, 96))
    assert film[corner].mean() > 1.5 * cc[corner].mean()  # the pectoral muscle, in MLO only
    np.testing.assert_array_equal(render_mammogram("malignant", 9, "CC", 64)[0],
                                  render_mammogram("malignant", 9, "CC", 64)[0])


def test_a_second_scanner_images_the_same_breast_differently():
    image, mask = render_phantom("malignant", 5, 0, 128)
    darker, same_mask = render_phantom("malignant", 5, 0, 128, Scanner(gain_db=-6.0, depth_db=-6.0))
    assert np.array_equal(mask, same_mask)  # the breast and its lesion do not move
    assert darker.mean() < image.mean() - 10
    top, bottom = slice(0, 64), slice(64, 128)
    assert (image[bottom].mean() - darker[bottom].mean()) > (image[top].mean() - darker[top].mean())

    def fine_detail(picture: np.ndarray) -> float:  # energy of pixel-to-pixel differences
        return float(np.abs(np.diff(picture.astype(float), axis=1)).mean() / picture.std())

    coarse, _ = render_phantom("malignant", 5, 0, 128, Scanner(speckle_size=1.6))
    assert fine_detail(coarse) < 0.8 * fine_detail(image)
