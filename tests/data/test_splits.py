import itertools
from collections import Counter

import cv2
import numpy as np
import pytest

from builders import smooth_image
from controlbreast.data.splits import (
    assign_splits,
    linked_groups,
    near_duplicate_pairs,
    nested_subsets,
    perceptual_hash,
)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def test_phash_finds_reencoded_shifted_and_resized_copies_but_not_others():
    image = smooth_image(1, (128, 128))
    _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    reencoded = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    shifted = np.roll(image, 3, axis=1)
    resized = cv2.resize(cv2.resize(image, (100, 100)), (128, 128))
    base = perceptual_hash(image)
    for copy in (reencoded, shifted, resized):
        assert hamming(base, perceptual_hash(copy)) <= 6
    others = [hamming(base, perceptual_hash(smooth_image(seed, (128, 128)))) for seed in range(2, 30)]
    assert min(others) > 6


def test_near_duplicate_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    hashes = [int(x) for x in rng.integers(0, 2**63, size=300, dtype=np.int64)]
    hashes[10] = hashes[200] ^ 0b101  # two bits apart
    hashes[50] = hashes[7]            # exact copy
    expected = [(i, j) for i in range(300) for j in range(i + 1, 300)
                if hamming(hashes[i], hashes[j]) <= 3]
    assert near_duplicate_pairs(hashes, 3, chunk=64) == expected
    assert (10, 200) in expected and (7, 50) in expected


def test_linked_groups_join_patients_only_by_direct_matches():
    """A chain of look-alikes across patients (p1~p2, p2~p3) joins p1 and p2, never p3 through p2
    (before: union-find chained them all, 79 films of different women in one group); a patient's
    own images stay together, and three mutual matches join all three."""
    groups = ["p1", "p1", "p2", "p3", "p4"]
    assert linked_groups(groups, [(1, 2), (2, 3)]) == ["p1", "p1", "p1", "p3", "p4"]
    assert linked_groups(groups, [(2, 3), (1, 2)]) == ["p1", "p1", "p2", "p2", "p4"]  # strongest first
    assert linked_groups(groups, [(1, 2), (2, 3), (0, 3)]) == ["p1", "p1", "p1", "p1", "p4"]
    chain = [f"p{k}" for k in range(80)]
    assert len(set(linked_groups(chain, [(k, k + 1) for k in range(79)]))) == 40
    unnamed = [False, False, False, True, True]  # images the source names no patient of chain on
    assert linked_groups(groups, [(1, 2), (2, 3)], unnamed) == ["p1", "p1", "p1", "p1", "p4"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assign_splits_keeps_groups_whole_and_stratifies(seed):
    rng = np.random.default_rng(seed)
    groups, labels = [], []
    for g in range(300):
        label = ("normal", "benign", "malignant")[g % 3]
        for _ in range(int(rng.integers(1, 4))):
            groups.append(f"g{g}")
            labels.append(label)
    splits = assign_splits(groups, labels, (0.7, 0.15, 0.15), seed)
    by_group = {}
    for group, split in zip(groups, splits, strict=True):
        assert by_group.setdefault(group, split) == split
    counts = Counter(zip(splits, labels, strict=True))
    for label in ("normal", "benign", "malignant"):
        total = sum(counts[(s, label)] for s in ("train", "val", "test"))
        for split, fraction in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
            assert abs(counts[(split, label)] / total - fraction) < 0.03
    assert splits == assign_splits(groups, labels, (0.7, 0.15, 0.15), seed)


def patients(count: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Image ids, groups and labels of ``count`` patients with 1-3 images each, classes 3:2:1."""
    rng = np.random.default_rng(seed)
    ids, groups, labels = [], [], []
    for p in range(count):
        label = ["normal", "normal", "normal", "benign", "benign", "malignant"][p % 6]
        for view in range(int(rng.integers(1, 4))):
            ids.append(f"p{p}-v{view}")
            groups.append(f"g{p}")
            labels.append(label)
    return ids, groups, labels


@pytest.mark.parametrize("seed", range(6))
def test_nested_subsets_are_nested_group_aware_and_stratified(seed):
    ids, groups, labels = patients(90, seed=11)
    fractions = [0.1, 0.25, 0.5, 1.0]
    subsets = nested_subsets(ids, groups, labels, fractions, seed)
    assert subsets[1.0] == frozenset(ids)
    for small, large in itertools.pairwise(fractions):
        assert subsets[small] < subsets[large]  # strictly inside the next
    group_of, label_of = dict(zip(ids, groups, strict=True)), dict(zip(ids, labels, strict=True))
    for fraction, subset in subsets.items():
        inside = {group_of[i] for i in subset}
        assert subset == {i for i in ids if group_of[i] in inside}  # whole patients only
        for label, total in Counter(labels).items():
            share = sum(label_of[i] == label for i in subset) / total
            assert abs(share - fraction) <= 0.1 + 3 / total  # within a patient or so of the fraction
    assert nested_subsets(ids, groups, labels, [0.5], seed)[0.5] == subsets[0.5]  # whatever else is asked


def test_nested_subsets_differ_by_seed_and_keep_every_class():
    ids, groups, labels = patients(30, seed=2)
    first, second = (nested_subsets(ids, groups, labels, [0.1], seed)[0.1] for seed in (0, 1))
    assert first != second
    assert {label for i, label in zip(ids, labels, strict=True) if i in first} == set(labels)
    with pytest.raises(ValueError, match="fractions"):
        nested_subsets(ids, groups, labels, [0.0], 0)
