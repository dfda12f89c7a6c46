"""Duplicates and label conflicts among prepared images: exact copies, near-duplicate groups.

Byte-identical inputs keep one copy (none when their labels disagree); near-duplicates (a perceptual
hash match confirmed by pixels, ``data/splits.py``) are merged into one group so a copy never
straddles splits, and sets of them whose labels disagree are dropped, kept or refused
(``data.near_duplicate_conflicts``).
"""

from __future__ import annotations

import math
import sys

from controlbreast.data.config import DataConfig
from controlbreast.data.prepare import Prepared
from controlbreast.data.records import Rejection
from controlbreast.data.splits import confirmed_pairs, linked_groups, near_duplicate_pairs
from controlbreast.errors import IngestError


def drop_exact_duplicates(good: list[Prepared], cfg: DataConfig) -> tuple[
        list[Prepared], list[tuple[Prepared, Rejection]]]:
    """Keep one copy of byte-identical inputs; drop every copy when their labels disagree.
    Returns the kept samples (input order) and each dropped one with its reason.

    Real sets contain both (BUSI has one image filed as benign and as malignant): a repeated copy
    only reweights training, but a label conflict has no right answer, so neither copy is used.
    """
    copies: dict[str, list[Prepared]] = {}
    for prepared in good:
        copies.setdefault(prepared.sha256, []).append(prepared)
    kept, dropped = [], []
    for group in copies.values():
        first, rest = group[0], group[1:]
        labels = {cfg.to_class(p.candidate.source_label) for p in group}
        if len(labels) > 1:
            others = ", ".join(p.candidate.source_path for p in group)
            dropped += [(p, Rejection(p.candidate.source_path, f"identical images with conflicting "
                                      f"labels {sorted(labels)}: {others}", "label_conflict"))
                        for p in group]
            continue
        kept.append(first)
        dropped += [(p, Rejection(p.candidate.source_path, "exact duplicate of "
                                  f"{first.candidate.source_path}", "duplicate")) for p in rest]
    return kept, dropped  # dicts keep first-seen order, so kept is in input order


def near_duplicate_conflicts(good: list[Prepared], cfg: DataConfig) -> list[list[Prepared]]:
    """Sets of near-duplicates (``splits.linked_groups`` of images: no chains between patients the
    source names) whose labels disagree, largest first.

    A lesion saved twice, once as benign and once as malignant, is a label conflict as much as a
    byte-identical copy is (BUSI has such pairs: one frame with calipers, one without).
    """
    pairs = near_duplicates(good, cfg)[1]
    if not pairs:
        return []
    members: dict[str, list[Prepared]] = {}
    named = [bool(patient) for patient in patients_of(good)]
    for prepared, group in zip(good, linked_groups([p.image_id for p in good], pairs, named), strict=True):
        members.setdefault(group, []).append(prepared)
    conflicting = [group for group in members.values()
                   if len({cfg.to_class(p.candidate.source_label) for p in group}) > 1]
    return sorted(conflicting, key=len, reverse=True)


def _check_drop(conflicts: list[list[Prepared]], described: list[str], total: int, cfg: DataConfig) -> None:
    """Refuse to drop more than ``data.near_duplicate_max_drop`` of the images as conflicts: that
    many look-alikes with different labels are different patients, not copies."""
    dropped = sum(len(group) for group in conflicts)
    if dropped <= cfg.near_duplicate_max_drop * total:
        return
    listed = "\n".join(f"  {len(group)} images: {text}" for group, text in zip(conflicts[:5], described[:5],
                                                                                 strict=False))
    raise IngestError(
        f"near-duplicate label conflicts would drop {dropped} of {total} images ({dropped / total:.0%}), "
        f"above data.near_duplicate_max_drop {cfg.near_duplicate_max_drop:g}. If these are different "
        "patients' look-alikes, raise data.near_duplicate_similarity (now "
        f"{cfg.near_duplicate_similarity:g}) or give patient ids (group_id); if they are copies, set "
        f"data.near_duplicate_max_drop: {math.ceil(dropped / total * 100 - 1e-9) / 100:g}; to keep them, "
        "data.near_duplicate_conflicts: keep. The largest sets:\n" + listed)


def resolve_near_duplicate_conflicts(good: list[Prepared], cfg: DataConfig) -> tuple[
        list[Prepared], list[tuple[Prepared, Rejection]]]:
    """Apply ``data.near_duplicate_conflicts``: drop every member (listed), keep them (warned) or
    fail. Returns the kept samples (input order) and each dropped one with its reason."""
    conflicts = near_duplicate_conflicts(good, cfg)
    described = [", ".join(f"{p.candidate.source_path} ({cfg.to_class(p.candidate.source_label)})"
                           for p in group) for group in conflicts]
    if conflicts and cfg.near_duplicate_conflicts == "fail":
        listed = "\n".join(f"  {line}" for line in described[:20])
        raise IngestError(f"{len(conflicts)} set(s) of near-duplicate images with conflicting "
                          "labels; set data.near_duplicate_conflicts: drop (or keep):\n" + listed)
    if not conflicts or cfg.near_duplicate_conflicts == "keep":
        if conflicts:
            print(f"WARNING: kept {len(conflicts)} set(s) of near-duplicates with conflicting labels "
                  "(data.near_duplicate_conflicts: keep)", file=sys.stderr)
        return good, []
    _check_drop(conflicts, described, len(good), cfg)
    dropped = [(p, Rejection(p.candidate.source_path, "near-duplicate images with conflicting "
                             f"labels: {text}", "near_duplicate_conflict"))
               for group, text in zip(conflicts, described, strict=True) for p in group]
    gone = {p.image_id for p, _ in dropped}
    return [p for p in good if p.image_id not in gone], dropped


def patients_of(good: list[Prepared]) -> list[str | None]:
    """The patient (keyed group) the source names for each sample: its listing's or its DICOM
    header's; None where it names none (BUSI, a CSV without ``group_id``)."""
    return [p.candidate.group or p.group for p in good]


def near_duplicates(good: list[Prepared], cfg: DataConfig) -> tuple[
        list[tuple[int, int]], list[tuple[int, int]]]:
    """Index pairs of ``good`` within ``data.near_duplicate_bits`` of each other (candidates), and
    those whose pixels agree too (``splits.similarity``), strongest first: at least
    ``data.near_duplicate_similarity``, or ``near_duplicate_similarity_across_patients`` for two
    images whose source gives different patients (different women's films score up to 0.76)."""
    pairs = near_duplicate_pairs([p.phash for p in good], cfg.near_duplicate_bits)
    patients = patients_of(good)
    bounds = [cfg.near_duplicate_similarity_across_patients
              if patients[i] and patients[j] and patients[i] != patients[j] else cfg.near_duplicate_similarity
              for i, j in pairs]
    return pairs, confirmed_pairs(pairs, [p.thumbnail for p in good], bounds)


def merge_report(good: list[Prepared], cfg: DataConfig) -> dict:
    """What near-duplicate grouping did, for ``metrics/ingest.json``: hash pairs, those confirmed
    by pixels (and those only the hash matched), confirmed pairs joining two different patients
    or sources, and the images of the largest merged group."""
    candidates, confirmed = near_duplicates(good, cfg)
    patients = patients_of(good)
    own = [patient or p.image_id for patient, p in zip(patients, good, strict=True)]
    groups = linked_groups(own, confirmed, [bool(patient) for patient in patients])
    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    return {"hash_pairs": len(candidates), "confirmed_pairs": len(confirmed),
            "rejected_by_similarity": len(candidates) - len(confirmed),
            "pairs_across_patients": sum(own[i] != own[j] for i, j in confirmed),
            "largest_group_images": max(sizes.values(), default=0),
            "lesion_masks_kept_by_area_rule": sum(p.lesions_kept for p in good)}

