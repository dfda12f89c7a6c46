"""Preparing one source candidate: load, check, orient and write its image (or its patches) and mask.

Each worker writes ``images/<id>.png`` (and ``masks/<id>.png``) into the build folder and sends back
only a ``Prepared`` record: the metadata that duplicate resolution (``data/duplicates.py``) and the
manifest rows (``data/manifest_rows.py``) read. A bad input comes back as its ``SampleError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from controlbreast.data.config import DataConfig
from controlbreast.data.imageio import depth_mismatch, encode_png, percentile_window, to_uint8
from controlbreast.data.mammo import BreastView, breast_region, orient
from controlbreast.data.patches import SPACING_UNKNOWN, cut, patch_side, plan_patches
from controlbreast.data.pool import worker_pool
from controlbreast.data.preprocess import fit_mask_to_square, fit_to_square
from controlbreast.data.records import Candidate, RawSample
from controlbreast.data.splits import IDENTITY_SIDE, identity_thumbnail, perceptual_hash
from controlbreast.errors import SampleError


@dataclass(frozen=True)
class WrittenFile:
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
    written: tuple[WrittenFile, ...]
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
                 cfg: DataConfig) -> tuple[WrittenFile, np.ndarray, int]:
    """The whole (oriented) image fitted to ``data.image_size``: its record, pixels and lost count."""
    small = to_uint8(fit_to_square(image, cfg.image_size, cfg.resize), bits)[0]
    (build / "images" / f"{name}.png").write_bytes(encode_png(small))
    kept = 0 if mask is None else _write_mask(build, name, mask, cfg.image_size, cfg.resize)
    return WrittenFile(name, has_mask=mask is not None), small, kept


def _write_patches(build: Path, name: str, image: np.ndarray, mask: np.ndarray | None, bits: int,
                   spacing_mm: float | None, sha256: str, cfg: DataConfig) -> tuple[list[WrittenFile], int]:
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
        written.append(WrittenFile(stem, box.kind, (box.top, box.left, box.side), mask is not None))
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

