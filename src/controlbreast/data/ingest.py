"""Ingest: any source → resized grayscale images, masks and a split manifest in one folder.

Output layout (``paths.prepared``)::

    images/<id>.png     (S, S) uint8 grayscale, S = data.image_size
    masks/<id>.png      (S, S) uint8 0/255 lesion mask, for images whose source has one
    manifest.csv        one row per image (``data/manifest.py``: PreparedRow)

A mammogram (``data.modality``) is first cropped to the breast and mirrored chest wall left
(``data/mammo.py``); with ``data.patches.enabled`` it becomes lesion-centred and background patches
``<id>-l<k>`` / ``<id>-b<k>`` (``data/patches.py``) that share its group and split.
    rejected.csv        inputs left out (source_path, problem): bad inputs under
                        data.on_error=skip, labels mapped to no class, exact duplicates (one copy
                        kept, or none if their labels conflict) and near-duplicates whose labels
                        conflict (data.near_duplicate_conflicts); counted per reason
                        (records.REASONS) in metrics/ingest.json

Workers write each image into a folder built beside the destination, swapped in only at the end,
so an interrupted or failed run leaves the previous output (or nothing), never a half-written set.
Ids follow source-path order and keep gaps where inputs were left out, so an id never changes
because another file was bad. Same params and inputs give byte-identical files.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from controlbreast.config import Config
from controlbreast.data.config import GROUP_SECRET_ENV, GROUP_SECRET_FILE_ENV, DataConfig, PhantomConfig
from controlbreast.data.imageio import depth_mismatch, encode_png, percentile_window, to_uint8
from controlbreast.data.mammo import BreastView, breast_region, orient
from controlbreast.data.manifest import PreparedRow, manifest_bytes
from controlbreast.data.patches import SPACING_UNKNOWN, cut, patch_side, plan_patches
from controlbreast.data.phantom import phantom_candidates
from controlbreast.data.phantom_mammo import mammo_phantom_candidates
from controlbreast.data.pool import worker_pool
from controlbreast.data.preprocess import fit_mask_to_square, fit_to_square
from controlbreast.data.privacy import group_key
from controlbreast.data.privacy import path_renamer as renamer
from controlbreast.data.records import REASONS, Candidate, RawSample, Rejection
from controlbreast.data.sources import busi_candidates, csv_candidates, source_labels
from controlbreast.data.splits import (
    IDENTITY_SIDE,
    assign_splits,
    confirmed_pairs,
    identity_thumbnail,
    linked_groups,
    near_duplicate_pairs,
    perceptual_hash,
)
from controlbreast.errors import ConfigError, IngestError, SampleError
from controlbreast.outputs import atomic_folder, csv_bytes

# Columns kept as they were, so an unchanged data set gives a byte-identical folder (DVC reruns
# nothing downstream); the reason of each row is in its problem text and in the metrics.
REJECTED_COLUMNS = ("source_path", "problem")


@dataclass(frozen=True)
class Written:
    """One image file a worker wrote: ``images/<name>.png`` (and ``masks/<name>.png`` when
    ``has_mask``); ``kind`` is ``image`` (the whole image) or a patch's ``lesion``/``background``
    with ``box`` (top, left, side) in the oriented crop's pixels ((0, 0, 0) for a whole image)."""

    name: str
    kind: str = "image"
    box: tuple[int, int, int] = (0, 0, 0)
    has_mask: bool = False


@dataclass(frozen=True)
class Prepared:
    """One candidate after its worker loaded, oriented and wrote it; only this metadata travels
    back. ``thumbnail`` is its (64, 64) ``splits.identity_thumbnail``; ``view`` how a mammogram
    was cropped and turned (None for ultrasound); ``lesions_kept`` counts masks that a 0.5
    threshold would have lost in resizing and the area rule kept; ``depth_warning`` why its
    declared bit depth looks wrong (``imageio.depth_mismatch``), None when it does not."""

    candidate: Candidate
    image_id: str
    written: tuple[Written, ...]
    sha256: str
    bit_depth: int
    orig_shape: tuple[int, int]
    phash: int
    group: str | None
    thumbnail: np.ndarray
    modality: str = "ultrasound"
    view: BreastView | None = None
    spacing_mm: float | None = None
    lesions_kept: int = 0
    depth_warning: str | None = None

    @property
    def has_mask(self) -> bool:
        return any(w.has_mask for w in self.written)


def image_id(index: int) -> str:
    """The id of the candidate at ``index`` in source-path order (stable when others fail)."""
    return f"img-{index:06d}"


def modality_of(cfg: DataConfig, raw: RawSample) -> str:
    """``data.modality``, or with ``auto`` mammography for a DICOM whose Modality is ``MG``."""
    if cfg.modality != "auto":
        return cfg.modality
    return "mammography" if raw.modality == "MG" else "ultrasound"


def degenerate(image: np.ndarray, min_side: int) -> str | None:
    """Why an (H, W) source image is unusable though it decodes: a side below ``data.min_side``
    (a thumbnail, a 1 x 1 failed export) or one value everywhere (a blank frame); None if neither."""
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        return (f"image is {width} x {height} px, below data.min_side {min_side} (a thumbnail or a "
                "failed export; lower data.min_side to keep it)")
    low, high = image.min(), image.max()
    if low == high:
        return f"image is constant (every pixel {int(low)}): a blank frame or a failed export"
    return None


def _checked(candidate: Candidate, needs_mask: bool, lesion: bool, min_side: int = 1) -> RawSample:
    raw = candidate.load()
    problem = degenerate(raw.image, min_side)
    if problem:
        raise SampleError(candidate.source_path, problem)
    if needs_mask and raw.mask is None:
        raise SampleError(candidate.source_path, f"label {candidate.source_label!r} is a lesion "
                          "label but the input has no mask (mask_path); add it, or set "
                          "data.require_lesion_masks: false")
    if lesion and raw.mask is not None and not raw.mask.any():
        raise SampleError(candidate.source_path, f"label {candidate.source_label!r} is a lesion "
                          "label but its mask is empty (no lesion pixel)")
    if not lesion and raw.mask is not None and raw.mask.any():
        raise SampleError(candidate.source_path, f"label {candidate.source_label!r} is not a lesion "
                          f"label (data.lesion_labels) but its mask marks {int(raw.mask.sum())} lesion "
                          "pixels: fix the label, or remove the mask (mask_path)")
    return raw


def intensity(raw: RawSample, cfg: DataConfig) -> tuple[np.ndarray, int, str | None]:
    """``raw.image`` as the rest of ``prepare`` scales it, the depth to scale it by, and why the
    file's declared depth looks wrong (None when it does not): ``data.intensity: percentile``
    stretches it between its own percentiles into 16 bits; ``depth`` keeps it, scaled by its
    declared depth (``data.bit_depth`` overrides a raster's), the same scale for every film."""
    if cfg.intensity == "percentile":
        return percentile_window(raw.image, *cfg.intensity_percentiles), 16, None
    if raw.scale_bits:  # a DICOM: its window output spread over 16 bits
        return raw.image, raw.scale_bits, None
    bits = cfg.bit_depth or raw.bit_depth
    return raw.image, bits, depth_mismatch(raw.image, bits)


def _write_mask(build: Path, name: str, mask: np.ndarray, size: int, mode: str) -> int:
    """Write the fitted mask; 1 when a 0.5 threshold would have lost a lesion the area rule kept."""
    fitted = fit_mask_to_square(mask, size, mode)
    (build / "masks" / f"{name}.png").write_bytes(encode_png(fitted.astype(np.uint8) * 255))
    if not mask.any():
        return 0
    return int(not (fit_to_square(mask.astype(np.float32), size, mode) >= 0.5).any())


def _write_image(build: Path, name: str, image: np.ndarray, mask: np.ndarray | None, bits: int,
                 cfg: DataConfig) -> tuple[Written, np.ndarray, int]:
    """The whole (oriented) image fitted to ``data.image_size``: its record, pixels and lost count."""
    small = to_uint8(fit_to_square(image, cfg.image_size, cfg.resize), bits)[0]
    (build / "images" / f"{name}.png").write_bytes(encode_png(small))
    kept = 0 if mask is None else _write_mask(build, name, mask, cfg.image_size, cfg.resize)
    return Written(name, has_mask=mask is not None), small, kept


def _write_patches(build: Path, name: str, image: np.ndarray, mask: np.ndarray | None, bits: int,
                   spacing_mm: float | None, sha256: str, cfg: DataConfig) -> tuple[list[Written], int]:
    """Lesion and background patches of one oriented mammogram, each at ``data.image_size``."""
    side = patch_side(cfg.patches, cfg.image_size, spacing_mm, image.shape[1])
    breast = breast_region(image, bits, cfg.mammography)
    boxes = plan_patches(breast, mask, side, cfg.patches, int(sha256[:16], 16))
    written, kept = [], 0
    for box in boxes:
        stem = name + box.suffix
        pixels = to_uint8(fit_to_square(cut(image, box), cfg.image_size, "pad"), bits)[0]
        (build / "images" / f"{stem}.png").write_bytes(encode_png(pixels))
        if mask is not None:
            kept += _write_mask(build, stem, cut(mask, box), cfg.image_size, "pad")
        written.append(Written(stem, box.kind, (box.top, box.left, box.side), mask is not None))
    return written, kept


def prepare(candidate: Candidate, index: int, cfg: DataConfig, build: Path,
            needs_mask: bool = False, lesion: bool = False) -> Prepared | SampleError:
    """Load, orient and write one candidate into ``build``; a bad input returns its error.

    The image is cropped, turned and resized at its own depth and only then scaled to 8 bits by
    its declared depth (``data.bit_depth`` overrides a raster's), the same scale for every film.
    ``needs_mask``: a lesion label whose input has no mask is bad; ``lesion``: an empty one is.
    """
    try:
        raw = _checked(candidate, needs_mask, lesion, cfg.min_side)
    except SampleError as error:
        return error
    name, (image, bits, warning) = image_id(index), intensity(raw, cfg)
    modality, mask, view = modality_of(cfg, raw), raw.mask, None
    spacing = raw.spacing_mm or cfg.pixel_spacing_mm
    patched = modality == "mammography" and cfg.patches.enabled
    if patched and cfg.patches.mm_per_px is not None and not spacing:
        return SampleError(candidate.source_path, SPACING_UNKNOWN)
    if modality == "mammography":
        image, mask, view = orient(image, mask, bits, cfg.mammography, raw.laterality)
    identity = to_uint8(fit_to_square(image, IDENTITY_SIDE, "pad"), bits)[0]
    if patched:
        written, kept = _write_patches(build, name, image, mask, bits, spacing, raw.sha256, cfg)
        if not written:
            return SampleError(candidate.source_path, "no patch fits: no lesion and no tissue "
                               "away from one (lower data.patches.mm_per_px or breast_fraction)")
        small = identity
    else:
        record, small, kept = _write_image(build, name, image, mask, bits, cfg)
        written = [record]
    depth = raw.bit_depth if raw.scale_bits or cfg.intensity == "percentile" else bits
    return Prepared(candidate, name, tuple(written), raw.sha256, depth, raw.image.shape,
                    perceptual_hash(small), raw.group, identity_thumbnail(identity), modality, view,
                    spacing, kept, warning)


def discover(cfg: DataConfig, phantom_cfg: PhantomConfig) -> tuple[list[Candidate], list[SampleError]]:
    """Candidates of the configured source, sorted by source path, and discovery problems."""
    if cfg.source == "phantom" and phantom_cfg.modality == "mammography":
        found, errors = mammo_phantom_candidates(phantom_cfg), []
    elif cfg.source == "phantom":
        found, errors = phantom_candidates(phantom_cfg), []
    elif cfg.source == "busi":
        found, errors = busi_candidates(cfg)
    else:
        found, errors = csv_candidates(cfg)
    return sorted(found, key=lambda c: c.source_path), errors


def source_name(cfg: DataConfig) -> str:
    """The source as a reader finds it on disk: the CSV manifest, the BUSI folder or the phantom."""
    return {"csv": f"manifest {cfg.manifest}", "busi": f"folder {cfg.root}"}.get(cfg.source, "the phantom")


def missing_classes(source_labels: Iterable[str], cfg: DataConfig) -> str | None:
    """Why a ``data.classes`` entry matches no label of the source (itself, or through
    ``data.label_map``), or None: a typo (``malignnat``) would leave a whole class out, listed only
    as unmapped labels. Patches supply ``patches.background_label`` themselves."""
    labels = sorted(set(source_labels))
    found = {cfg.to_class(label) for label in labels}
    if cfg.patches.enabled:
        found.add(cfg.patches.background_label)
    missing = [name for name in cfg.classes if name not in found]
    if not labels or not missing:
        return None
    return (f"data.classes entr{'y' if len(missing) == 1 else 'ies'} "
            f"{', '.join(map(repr, missing))} match{'es' if len(missing) == 1 else ''} no "
            f"label in {source_name(cfg)} (labels found: {', '.join(labels)}); fix the "
            "entry or map a label to it with data.label_map")


def check_classes(source_labels: Iterable[str], cfg: DataConfig) -> None:
    """``missing_classes`` as a ``ConfigError``."""
    if problem := missing_classes(source_labels, cfg):
        raise ConfigError(problem)


def check_source_classes(config: Config) -> None:
    """``check_classes`` against the labels of the source where it is found here (without
    building candidates, see ``source_labels``; nothing when it is not here): what ``overlay``
    checks before it writes params that ingest would refuse (``malignent`` for ``malignant``)."""
    labels = source_labels(config.data)
    if labels is not None:
        check_classes(labels, config.data)


def exclude_unmapped(candidates: list[Candidate], cfg: DataConfig) -> tuple[
        list[Candidate], list[Rejection]]:
    """Leave out candidates whose label maps to no class: the user chose ``data.classes``, so a
    label outside it (``classes: [normal, malignant]`` on three-class data) is excluded and
    listed, not an error."""
    kept, excluded = [], []
    for candidate in candidates:
        if cfg.to_class(candidate.source_label) is None:
            excluded.append(Rejection(candidate.source_path, f"label {candidate.source_label!r} maps "
                                      f"to no class of data.classes {list(cfg.classes)} (left out; "
                                      "map it with data.label_map to use it)", "excluded_label"))
        else:
            kept.append(candidate)
    return kept, excluded


def load_all(candidates: list[Candidate], cfg: DataConfig,
             build: Path) -> Iterator[Prepared | SampleError]:
    """``prepare`` every candidate into ``build``, in order, over ``cfg.workers`` processes
    (which die with this one, see ``pool``). ``candidates[i]`` gets id ``image_id(i)``."""
    required = set(cfg.lesion_labels) if cfg.require_lesion_masks else set()
    jobs = ((c, i, cfg, build, c.source_label in required, c.source_label in cfg.lesion_labels)
            for i, c in enumerate(candidates))
    bar = dict(total=len(candidates), desc="ingest", unit="img")
    if cfg.workers == 1:
        yield from tqdm((prepare(*job) for job in jobs), **bar)
        return
    with worker_pool(cfg.workers) as pool:
        chunk = max(1, len(candidates) // (cfg.workers * 16))
        yield from tqdm(pool.map(prepare, *zip(*jobs, strict=True), chunksize=chunk), **bar)


def _partition(results: Iterable[Prepared | SampleError]) -> tuple[list[Prepared], list[SampleError]]:
    good, bad = [], []
    for result in results:
        (bad if isinstance(result, SampleError) else good).append(result)
    return good, bad


def _fail_on(errors: list[SampleError], cfg: DataConfig, when: str = "") -> None:
    if errors and cfg.on_error == "fail":
        listed = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise IngestError(f"{len(errors)} bad input(s){when}; set data.on_error: skip to leave "
                          f"them out and list them in rejected.csv:\n{listed}{more}")


def _check(good: list[Prepared], errors: list[SampleError], cfg: DataConfig) -> None:
    _fail_on(errors, cfg)
    if not good:
        raise IngestError(f"no usable images in {source_name(cfg)}" +
                          (f" ({len(errors)} inputs rejected)" if errors else ": the data set is empty"))


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


def _view_columns(p: Prepared) -> dict:
    top, left, height, width = p.view.box if p.view else (0, 0, *p.orig_shape)
    return {"modality": p.modality, "laterality": p.view.laterality if p.view else "",
            "flipped": bool(p.view and p.view.flipped), "crop_top": top, "crop_left": left,
            "crop_height": height, "crop_width": width, "pixel_spacing_mm": p.spacing_mm or 0.0}


def _written_rows(p: Prepared, label: str, cfg: DataConfig) -> list[dict]:
    """One row per file of ``p``: a background patch is labelled ``patches.background_label``."""
    rows = []
    for w in p.written:
        background = w.kind == "background"
        rows.append({"id": w.name, "label": cfg.patches.background_label if background else label,
                     "source_label": cfg.patches.background_label if background
                     else p.candidate.source_label,
                     "has_mask": w.has_mask, "source_image": p.image_id, "patch_kind": w.kind,
                     "patch_top": w.box[0], "patch_left": w.box[1], "patch_side": w.box[2]})
    return rows


def manifest_rows(good: list[Prepared], cfg: DataConfig, seed: int,
                  rename: Callable[[str], str] = str) -> list[dict]:
    """Manifest rows (ids in source-path order), with merged groups and assigned splits.
    ``rename`` maps a source path to what the manifest shows (see ``data.anonymise_paths``).
    Groups and splits are decided per source image; its patches inherit them."""
    patients = patients_of(good)
    own_groups = [patient or p.image_id for patient, p in zip(patients, good, strict=True)]
    groups = linked_groups(own_groups, near_duplicates(good, cfg)[1], [bool(patient) for patient in patients])
    labels = [cfg.to_class(p.candidate.source_label) for p in good]
    fractions = (cfg.split.train, cfg.split.val, cfg.split.test)
    splits = assign_splits(groups, labels, fractions, seed)
    rows = []
    for p, label, group, split in zip(good, labels, groups, splits, strict=True):
        shared = {"split": split, "group": group, "source_path": rename(p.candidate.source_path),
                  "orig_height": p.orig_shape[0], "orig_width": p.orig_shape[1],
                  "bit_depth": p.bit_depth, "sha256": p.sha256, "phash": f"{p.phash:016x}",
                  **_view_columns(p)}
        rows += [{**row, **shared} for row in _written_rows(p, label, cfg)]
    return rows


def _remove(build: Path, dropped: Iterable[Prepared]) -> None:
    """Delete the files that workers wrote for inputs left out after all (duplicates)."""
    for prepared in dropped:
        for written in prepared.written:
            (build / "images" / f"{written.name}.png").unlink()
            (build / "masks" / f"{written.name}.png").unlink(missing_ok=True)


def path_renamer(cfg: DataConfig, paths: Iterable[str]) -> Callable[[str], str]:
    """Identity, or with ``data.anonymise_paths`` a keyed renaming of every source path (and of
    paths quoted in rejection messages). Needs the group secret for a real source."""
    if not cfg.anonymise_paths:
        return str
    key = group_key(cfg)
    if key is None:
        raise ConfigError(f"data.anonymise_paths needs a secret: set {GROUP_SECRET_ENV} (or "
                          f"{GROUP_SECRET_FILE_ENV}), or data.allow_unkeyed_groups: true")
    return renamer(paths, key)


def _write_tables(build: Path, rows: list[dict], rejected: list[Rejection],
                  rename: Callable[[str], str]) -> None:
    (build / "manifest.csv").write_bytes(manifest_bytes(rows, PreparedRow))
    listed = [{"source_path": rename(r.source_path), "problem": rename(r.problem)} for r in rejected]
    (build / "rejected.csv").write_bytes(csv_bytes(listed, REJECTED_COLUMNS))


def split_counts(rows: list[dict]) -> dict[str, int]:
    """Images per split and class, e.g. ``{"train/benign": 120, ...}``, for metrics and logs."""
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['label']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def rejection_counts(rejected: list[Rejection]) -> dict[str, int]:
    """Rejected inputs per reason (see ``records.REASONS``), for metrics and logs."""
    return {reason: n for reason in REASONS if (n := sum(r.reason == reason for r in rejected))}


def _load_checked(candidates: list[Candidate], cfg: DataConfig, build: Path) -> tuple[
        list[Prepared], list[Rejection]]:
    loaded, bad = _partition(load_all(candidates, cfg, build))
    _check(loaded, bad, cfg)
    warn_depths(loaded)
    good, dropped = drop_exact_duplicates(loaded, cfg)
    good, conflicting = resolve_near_duplicate_conflicts(good, cfg)
    if not good:
        raise IngestError(f"no usable images: all {len(loaded)} are duplicates or label conflicts")
    _remove(build, (prepared for prepared, _ in dropped + conflicting))
    rejected = [Rejection(e.source_path, e.problem) for e in bad]
    return good, rejected + [reason for _, reason in dropped + conflicting]


def warn_depths(loaded: list[Prepared], shown: int = 20) -> None:
    """One warning line per file whose declared depth looks wrong (the first ``shown``), on stderr:
    the image is kept, scaled as declared, and ``validate`` would only see it as dark."""
    flagged = [p for p in loaded if p.depth_warning]
    for prepared in flagged[:shown]:
        print(f"WARNING: {prepared.candidate.source_path}: {prepared.depth_warning}", file=sys.stderr)
    if len(flagged) > shown:
        print(f"WARNING: ... and {len(flagged) - shown} more file(s) whose declared bit depth looks wrong",
              file=sys.stderr)


@dataclass(frozen=True)
class IngestResult:
    """Manifest rows, rejected inputs and the near-duplicate/mask ``merge_report``."""

    rows: list[dict]
    rejected: list[Rejection]
    merges: dict


def run_ingest(config: Config, every_class: bool = True) -> IngestResult:
    """Run the ingest stage. Raises ``IngestError`` (``ConfigError`` for a class no label matches).

    Problems found while listing the inputs stop an ``on_error: fail`` run before any image is
    decoded. ``every_class``: each of ``data.classes`` must be in the source (an external test
    set may hold any subset of them).
    """
    cfg = config.data
    candidates, errors = discover(cfg, config.phantom)
    _fail_on(errors, cfg, " found while listing the inputs")
    if every_class:
        check_classes((c.source_label for c in candidates), cfg)
    rename = path_renamer(cfg, [c.source_path for c in candidates] + [e.source_path for e in errors])
    candidates, excluded = exclude_unmapped(candidates, cfg)
    with atomic_folder(Path(config.paths.prepared)) as build:
        (build / "images").mkdir()
        (build / "masks").mkdir()
        good, dropped = _load_checked(candidates, cfg, build)
        rejected = [Rejection(e.source_path, e.problem) for e in errors] + excluded + dropped
        rows = manifest_rows(good, cfg, config.seed, rename)
        _write_tables(build, rows, rejected, rename)
    return IngestResult(rows, rejected, merge_report(good, cfg))


def ingest(config: Config, every_class: bool = True) -> tuple[list[dict], list[Rejection]]:
    """``run_ingest``'s manifest rows and rejected inputs."""
    result = run_ingest(config, every_class)
    return result.rows, result.rejected
