"""Leak-free splits: images that share a patient, or that are near-duplicates, share a split.

Real sets such as BUSI contain the same lesion imaged twice, sometimes re-encoded or slightly
shifted; a plain random split puts one copy in train and the other in test and quietly inflates
every test metric. We therefore merge groups through perceptual-hash neighbours before a
stratified, group-aware split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from controlbreast.data import portable

SPLITS = ("train", "val", "test")


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a (H, W) image (robust to re-encoding, shifts and resizing).

    The classic pHash: area-downsample to 32x32, 2-D DCT, keep the 8x8 lowest frequencies and
    set a bit where a coefficient exceeds their median. The DCT is ``cv2.dct``'s (orthonormal
    DCT-II) computed with ``portable`` maths, so the bits, and the groups, are the same on any CPU.
    """
    small = cv2.resize(image.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    basis = _dct_rows(32)[:8]
    lowest = portable.matmul(portable.matmul(basis, small), basis.T)
    return int(np.packbits((lowest > np.median(lowest)).flatten()).view(">u8")[0])


def _dct_rows(n: int) -> np.ndarray:
    """(n, n) orthonormal DCT-II matrix: row k is sqrt((1 + (k > 0)) / n) cos(pi (2j + 1) k / 2n)."""
    k, j = np.arange(n)[:, None], np.arange(n)[None, :]
    scale = np.where(k > 0, math.sqrt(2.0 / n), math.sqrt(1.0 / n))
    return scale * portable.cos(math.pi * (2 * j + 1) * k / (2 * n))


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return int(root)

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def near_duplicate_pairs(hashes: Sequence[int], max_bits: int,
                         chunk: int = 1024) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most ``max_bits`` bits.

    All pairs are compared, in row chunks so memory stays O(chunk * n): about a second for 16,000
    images; near-duplicates are rare, so the output is small.
    """
    values = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), chunk):
        block = values[start:start + chunk, None] ^ values[None, :]
        rows, cols = np.nonzero(np.bitwise_count(block) <= max_bits)
        rows = rows + start
        keep = rows < cols
        pairs += zip(rows[keep].tolist(), cols[keep].tolist(), strict=True)
    return pairs


def chained_groups(groups: Sequence[str], pairs: Sequence[tuple[int, int]]) -> list[str]:
    """Group of each item after joining items that share a group or form a pair (transitively).

    A merged group is named after its smallest member group, so names are deterministic.
    """
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    union = _UnionFind(len(names))
    for first, second in pairs:
        union.union(index[groups[first]], index[groups[second]])
    return [names[union.find(index[group])] for group in groups]


def linked_groups(groups: Sequence[str], pairs: Sequence[tuple[int, int]],
                  named: Sequence[bool] | None = None) -> list[str]:
    """Group of each item after joining near-duplicates, never chaining named patients together.

    Items of one group stay together. A pair with an item whose patient the source does not name
    (``named``; default: every item's is) joins transitively (``chained_groups``: one lesion saved
    three times is one group, as on BUSI). Pairs between named patients join by complete linkage
    only: every patient of the one side must pair directly with every patient of the other, so a
    chain of look-alikes (a~b, b~c, c~d...) never joins a and d through the others (on 318 real
    films union-find chained 79 women into one group). ``pairs`` are taken in their order
    (strongest first, say). A joined group is named after its smallest member group.
    """
    named = [True] * len(groups) if named is None else named
    groups = chained_groups(groups, [(i, j) for i, j in pairs if not (named[i] and named[j])])
    direct = [(i, j) for i, j in pairs if named[i] and named[j] and groups[i] != groups[j]]
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    linked = {frozenset((index[groups[i]], index[groups[j]])) for i, j in direct}
    members = {k: {k} for k in range(len(names))}
    cluster = list(range(len(names)))
    for first, second in direct:
        a, b = cluster[index[groups[first]]], cluster[index[groups[second]]]
        if a == b or not all(frozenset((x, y)) in linked for x in members[a] for y in members[b]):
            continue
        keep, gone = min(a, b), max(a, b)
        members[keep] |= members.pop(gone)
        for k in members[keep]:
            cluster[k] = keep
    return [names[min(members[cluster[index[group]]])] for group in groups]


def assign_splits(groups: Sequence[str], labels: Sequence[str], fractions: Sequence[float],
                  seed: int) -> list[str]:
    """Split of each item; whole groups go to one split, each class near its target fractions.

    Greedy: groups in seeded random order (largest first), each to the split whose per-class
    counts fall furthest short of target, relative to the target. Returns names from ``SPLITS``.
    """
    classes = sorted(set(labels))
    group_names = sorted(set(groups))
    counts = np.zeros((len(group_names), len(classes)))
    group_index = {name: i for i, name in enumerate(group_names)}
    for group, label in zip(groups, labels, strict=True):
        counts[group_index[group], classes.index(label)] += 1
    target = np.asarray(fractions)[:, None] * counts.sum(axis=0)[None, :]
    filled = np.zeros_like(target)
    order = np.random.default_rng(seed).permutation(len(group_names))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    chosen = np.empty(len(group_names), dtype=int)
    for g in order:
        need = (target - filled) / np.maximum(target, 1e-9) * counts[g]
        shortfall = [math.fsum(row) for row in need.tolist()]  # exact: no BLAS order to differ
        chosen[g] = int(np.argmax(shortfall))
        filled[chosen[g]] += counts[g]
    return [SPLITS[chosen[group_index[group]]] for group in groups]


IDENTITY_SIDE = 64  # side of the thumbnails near-duplicates are confirmed on
_SHIFT = 2  # thumbnail pixels of shift tried when confirming


def identity_thumbnail(image: np.ndarray) -> np.ndarray:
    """(64, 64) float32 band-pass of a (H, W) uint8 image, NaN on background, for ``similarity``.

    What tells two films apart is the tissue's texture, not what every mammogram shares (the
    bright-on-black outline, the darker skin line, the pectoral edge): the blurs are normalised over
    tissue pixels only (the outline leaves no ring), the shading is subtracted, the band is divided
    by its local contrast (a strong common edge weighs no more than texture), and black pixels and
    the outline are left out. Tuned on BUSI's near-duplicates (all but a caliper-marked pair score
    above 0.74, random pairs below 0.37) and the mammography phantom (different women below 0.5).
    """
    small = cv2.resize(image, (IDENTITY_SIDE, IDENTITY_SIDE), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32)
    tissue = (small > 5).astype(np.float32)

    def smooth(values: np.ndarray, sigma: float) -> np.ndarray:
        weight = portable.gaussian_blur(tissue, (0, 0), sigma)
        return portable.gaussian_blur(values * tissue, (0, 0), sigma) / np.maximum(weight, 1e-3)

    band = smooth(small, 0.7) - smooth(small, 4.0)
    band /= np.sqrt(smooth(band * band, 3.0) + 1.0)
    band[cv2.erode(tissue, np.ones((3, 3), np.uint8)) == 0] = np.nan
    return band


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Normalised cross-correlation of two ``identity_thumbnail``s over the tissue they share, the
    best over shifts of up to two thumbnail pixels (a re-framed copy); -1 when they share none."""
    best, n = -1.0, IDENTITY_SIDE
    for dy in range(-_SHIFT, _SHIFT + 1):
        for dx in range(-_SHIFT, _SHIFT + 1):
            a = first[max(0, dy):n + min(0, dy), max(0, dx):n + min(0, dx)]
            b = second[max(0, -dy):n + min(0, -dy), max(0, -dx):n + min(0, -dx)]
            both = ~(np.isnan(a) | np.isnan(b))
            if both.sum() < 0.1 * n * n:
                continue
            x, y = a[both] - a[both].mean(), b[both] - b[both].mean()
            scale = float(np.sqrt((x * x).sum() * (y * y).sum()))
            best = max(best, float((x * y).sum()) / scale if scale > 0 else -1.0)
    return best


def confirmed_pairs(pairs: Sequence[tuple[int, int]], thumbnails: Sequence[np.ndarray],
                    min_similarity: float | Sequence[float]) -> list[tuple[int, int]]:
    """The hash pairs whose pixels agree too (``similarity`` at least ``min_similarity``, one bound
    for all or one per pair), strongest first (ties in pair order).

    A 64-bit hash of a mostly black film says little about who it shows: different women's
    mammograms fall within a few bits of each other. A hash match is only a candidate.
    """
    bounds = [min_similarity] * len(pairs) if isinstance(min_similarity, float | int) else min_similarity
    scored = [(similarity(thumbnails[i], thumbnails[j]), (i, j)) for i, j in pairs]
    kept = [(score, pair) for (score, pair), bound in zip(scored, bounds, strict=True) if score >= bound]
    return [pair for _, pair in sorted(kept, key=lambda item: -item[0])]


def _group_classes(groups: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """Each group's class: the label most of its images have (ties: the first in sorted order)."""
    found: dict[str, dict[str, int]] = {}
    for group, label in zip(groups, labels, strict=True):
        found.setdefault(group, {}).setdefault(label, 0)
        found[group][label] += 1
    return {group: min(counts, key=lambda label: (-counts[label], label)) for group, counts in found.items()}


def nested_subsets(ids: Sequence[str], groups: Sequence[str], labels: Sequence[str],
                   fractions: Sequence[float], seed: int) -> dict[float, frozenset[str]]:
    """For each fraction in (0, 1], a subset of ``ids`` with about that fraction of each class.

    Whole groups only (a patient is in or out), so a smaller subset never holds part of a patient
    that a larger one splits; per class, groups are taken in one seeded order until the class's
    share reaches ``round(fraction x its images)`` (at least one group), so each smaller subset is
    a prefix of, and therefore inside, every larger one, whatever the fractions asked for.
    """
    if any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must be in (0, 1], got {list(fractions)}")
    group_class = _group_classes(groups, labels)
    names = sorted(group_class)
    rank = {names[k]: r for r, k in enumerate(np.random.default_rng(seed).permutation(len(names)))}
    members: dict[str, list[str]] = {}
    for image_id, group in zip(ids, groups, strict=True):
        members.setdefault(group, []).append(image_id)
    by_class: dict[str, list[str]] = {}
    for group in sorted(names, key=rank.__getitem__):
        by_class.setdefault(group_class[group], []).append(group)
    subsets = {}
    for fraction in fractions:
        chosen: set[str] = set()
        for class_groups in by_class.values():
            total = sum(len(members[g]) for g in class_groups)
            wanted, taken = max(1, round(fraction * total)), 0
            for group in class_groups:
                if taken >= wanted:
                    break
                chosen.update(members[group])
                taken += len(members[group])
        subsets[fraction] = frozenset(chosen)
    return subsets
