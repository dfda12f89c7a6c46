"""Reading source images of any common medical format into 8-bit grayscale, and writing PNGs.

Sources hand us PNG/JPEG/TIFF at 8 or 16 bits (often RGB though the content is grayscale) and
DICOM. Everything becomes a (H, W) uint8 or uint16 array here (``read_source``: ingest resizes
before it scales to 8 bits with ``to_uint8``, so a large 16-bit image never gets a full-size
float copy), or a ``SampleError`` that names the file and the problem: zero bytes,
truncated or corrupt data, an unsupported mode, a multi-frame DICOM, more pixels than allowed
(checked from the header, before decoding).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from controlbreast.errors import MissingInputError, SampleError

DICOM_SUFFIXES = (".dcm", ".dicom")
_GRAY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "F"}
_CONVERTIBLE_MODES = {"RGB", "RGBA", "LA", "P", "1", "RGBX"}


def read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes; a missing or empty file is a ``SampleError`` under ``name``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SampleError(name, "file not found") from None
    except OSError as error:
        raise SampleError(name, f"cannot read file: {error.strerror or error}") from None
    if not data:
        raise SampleError(name, "file is empty (0 bytes)")
    return data


def check_size(name: str, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image larger than ``max_pixels`` from its header, before any pixel is decoded.

    A PNG of a few KB can declare 20000 x 20000 pixels (a decompression bomb); decoding it would
    take gigabytes. Raising ``SampleError`` makes it one bad input that ``on_error: skip`` skips.
    """
    if max_pixels is not None and width * height > max_pixels:
        raise SampleError(name, f"image is {width}x{height} (WxH) = {width * height / 1e6:.0f} MP, "
                                f"above data.max_pixels ({max_pixels / 1e6:g} MP)")


def scale_bits(pixels: np.ndarray) -> int:
    """Bits that hold the largest value of integer pixels (at least 8): the absolute scale."""
    if pixels.dtype == np.uint8 or pixels.size == 0:
        return 8
    return max(8, int(pixels.max()).bit_length())


def to_uint8(pixels: np.ndarray, bits: int | None = None) -> tuple[np.ndarray, int]:
    """Scale integer or float pixels to uint8 and report the source bit depth.

    Integers keep their absolute scale: a 12-bit image stored in 16 bits maps its 0..4095 range,
    not its own min..max, so two images of one scanner stay comparable. ``bits`` overrides the
    depth found in ``pixels`` (a resized copy may have lost the full image's maximum). Floats are
    min-max scaled. Works in float32: one 4-byte copy, never int64/float64 ones.
    """
    if pixels.dtype == np.uint8:
        return pixels, 8
    if np.issubdtype(pixels.dtype, np.integer):
        if pixels.min() < 0:
            pixels = (pixels.astype(np.int64) - int(pixels.min())).astype(np.float32)
        bits = bits or scale_bits(pixels)
        scaled = pixels.astype(np.float32) * np.float32(255.0 / float(2**bits - 1))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), bits
    return _min_max(pixels.astype(np.float64), 255, np.uint8), 32


def percentile_window(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) ``pixels`` of any depth stretched from their own ``low``..``high`` percentiles to the
    full uint16 range (below and above clipped): the usual intensity rule for mammograms, whose
    detectors fill 10 to 14 bits of a 16-bit file and whose files rarely say which."""
    floor, ceiling = np.percentile(pixels, (low, high))
    if ceiling <= floor:  # a nearly flat image: its full range instead
        floor, ceiling = float(pixels.min()), float(pixels.max())
    scale = np.float32(65535.0 / max(ceiling - floor, 1e-9))
    values = (pixels.astype(np.float32) - np.float32(floor)) * scale
    return np.clip(np.rint(values, out=values), 0, 65535).astype(np.uint16)


def depth_mismatch(pixels: np.ndarray, bits: int) -> str | None:
    """Why a raster's declared depth ``bits`` looks wrong, or None: its largest value fills under a
    quarter of the range (a 12-bit detector in a 16-bit file, no PNG sBIT chunk), so scaling by
    ``bits`` darkens it (by 16 for 12 of 16 bits). 8-bit images are never flagged."""
    used = scale_bits(pixels)
    if bits <= 8 or used > bits - 2:
        return None
    return (f"declares {bits}-bit but its largest value {int(pixels.max())} fits in {used} bits: "
            f"scaled by {bits} bits it comes out {2 ** (bits - used)}x too dark; set data.bit_depth: "
            f"{used} (the detector's depth) or data.intensity: percentile")


def _min_max(values: np.ndarray, top: int, dtype: type) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=dtype)
    values = (values - low) * (top / (high - low))
    return np.clip(np.rint(values, out=values), 0, top).astype(dtype)


def to_native(pixels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 pixels of any decoded array, keeping the integer scale.

    uint8/uint16 pass unchanged, so a 16-bit source is resized before it is ever widened. Other
    integers are shifted to start at 0 when negative, and wider than 16 bits lose their low bits
    (the absolute scale is kept); floats are min-max scaled to the full 16-bit range.
    """
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    if pixels.dtype.kind in "ui":
        low = min(0, int(pixels.min()))
        shifted = pixels.astype(np.int64) - low
        drop = max(0, int(shifted.max()).bit_length() - 16)
        return (shifted >> drop).astype(np.uint16)
    return _min_max(pixels.astype(np.float64), 2**16 - 1, np.uint16)


def _pil_native(image: Image.Image, name: str) -> np.ndarray:
    if image.mode in _CONVERTIBLE_MODES:
        image = image.convert("L")
    elif image.mode not in _GRAY_MODES:
        raise SampleError(name, f"unsupported image mode {image.mode!r} (expected grayscale or RGB)")
    pixels = np.asarray(image)
    if pixels.ndim != 2:
        raise SampleError(name, f"expected a 2-D image, got shape {pixels.shape}")
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return pixels


def decode_raster_native(data: bytes, name: str,
                         max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """Decode PNG/JPEG/TIFF bytes to (H, W) uint8 or uint16 (its own depth) and its bit depth.

    The size is checked from the header before decoding (see ``check_size``).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_size(name, *image.size, max_pixels)
            if getattr(image, "n_frames", 1) > 1:
                raise SampleError(name, f"has {image.n_frames} frames; expected one image")
            image.load()
            pixels = to_native(_pil_native(image, name))
            return pixels, scale_bits(pixels)
    except UnidentifiedImageError:
        raise SampleError(name, "not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError:  # Pillow's own check runs first, above ~179 MP
        raise SampleError(name, "image too large: above Pillow's decompression-bomb limit of "
                                f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise SampleError(name, f"corrupt or truncated image ({error})") from None


def decode_raster(data: bytes, name: str, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """Decode PNG/JPEG/TIFF bytes to (H, W) uint8 and the source bit depth."""
    pixels, bits = decode_raster_native(data, name, max_pixels)
    return to_uint8(pixels, bits)


@dataclass(frozen=True)
class DicomTags:
    """What ingest keeps from a DICOM header besides pixels: nothing that names a person.

    ``patient`` is the PatientID, which callers must only ever store keyed-hashed; ``modality``
    is e.g. ``MG`` or ``US``; ``laterality`` ``L``/``R`` (ImageLaterality, else Laterality) or
    None; ``spacing_mm`` the mean of PixelSpacing (else ImagerPixelSpacing), None when absent.
    """

    patient: str | None = None
    modality: str | None = None
    laterality: str | None = None
    spacing_mm: float | None = None


def _tags(dataset) -> DicomTags:
    patient = str(dataset.get("PatientID", "")).strip() or None
    modality = str(dataset.get("Modality", "")).strip().upper() or None
    side = str(dataset.get("ImageLaterality", "") or dataset.get("Laterality", "")).strip().upper()
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    try:
        spacing_mm = float(np.mean([float(v) for v in spacing])) if spacing else None
    except (TypeError, ValueError):
        spacing_mm = None
    return DicomTags(patient, modality, side if side in ("L", "R") else None,
                     spacing_mm if spacing_mm and spacing_mm > 0 else None)


def read_dicom_tags(path: Path) -> DicomTags:
    """The tags of a DICOM header, its pixel data left unread (a preflight reads thousands in
    seconds); empty tags when the file cannot be read (ingest reports it then)."""
    import pydicom

    try:
        return _tags(pydicom.dcmread(path, stop_before_pixels=True))
    except Exception:  # pydicom raises many types for bad files; reading pixels names the problem
        return DicomTags()


def dicom_range(dataset) -> tuple[float, float]:
    """The fixed output range of the modality + VOI transforms of ``dataset``, not of its pixels.

    Scaling by this range (not by an image's own min and max) maps one raw value to one grey level
    in every film of a scanner. Windowing outputs the stored range through the rescale (pydicom's
    ``apply_windowing``); a VOI LUT sequence its own descriptor's bits.
    """
    if dataset.get("VOILUTSequence") and "WindowCenter" not in dataset:
        return 0.0, float(2 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if dataset.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(dataset.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(dataset.get("BitsStored", 8))
    low, high = (0, 2**bits - 1) if int(dataset.get("PixelRepresentation", 0)) == 0 else (
        -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1]


def _frames(dataset, name: str) -> None:
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise SampleError(name, f"multi-frame DICOM ({frames} frames: tomosynthesis, cine or a "
                                "stack); export one 2-D frame per file")


def decode_dicom_tags(data: bytes, name: str, max_pixels: int | None = None
                      ) -> tuple[np.ndarray, int, DicomTags]:
    """Decode a DICOM to (H, W) uint16 with its modality and VOI LUT (window) applied.

    The window's output is scaled from its fixed range (``dicom_range``) to the full 16-bit range,
    never from the image's own min and max; MONOCHROME1 (white = low values) is inverted.
    Rows x Columns and NumberOfFrames are checked before the pixel data is decoded.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        check_size(name, int(dataset.get("Columns", 0)), int(dataset.get("Rows", 0)), max_pixels)
        _frames(dataset, name)
        pixels = dataset.pixel_array
    except SampleError:
        raise
    except Exception as error:  # pydicom raises many types for bad files
        raise SampleError(name, f"corrupt or unreadable DICOM ({error})") from None
    if pixels.ndim != 2:
        raise SampleError(name, f"DICOM pixel data has shape {pixels.shape}; expected one 2-D "
                                "grayscale frame")
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float64)
    low, high = dicom_range(dataset)
    values = np.clip((values - low) * ((2**16 - 1) / max(high - low, 1e-9)), 0, 2**16 - 1)
    if str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        values = (2**16 - 1) - values
    return np.rint(values).astype(np.uint16), int(dataset.get("BitsStored", 8)), _tags(dataset)


def decode_dicom_native(data: bytes, name: str, max_pixels: int | None = None
                        ) -> tuple[np.ndarray, int, str | None]:
    """``decode_dicom_tags`` returning only the PatientID of the tags."""
    pixels, bits, tags = decode_dicom_tags(data, name, max_pixels)
    return pixels, bits, tags.patient


def decode_dicom(data: bytes, name: str, max_pixels: int | None = None
                 ) -> tuple[np.ndarray, int, str | None]:
    """Decode a DICOM to (H, W) uint8 (see ``decode_dicom_native``), its BitsStored and PatientID."""
    pixels, bits, patient = decode_dicom_native(data, name, max_pixels)
    return to_uint8(pixels, 16)[0], bits, patient


@dataclass(frozen=True)
class SourceImage:
    """One decoded source file: (H, W) uint8 or uint16 ``pixels``; ``bit_depth`` the depth the file
    declares (PNG/TIFF: the sBIT chunk, else the container's 8 or 16; DICOM: BitsStored);
    ``scale_bits`` the depth by which ``pixels`` map to 8 bits (16 for DICOM, whose window output
    is already spread over 16 bits); ``sha256`` of the file; ``tags`` (empty for rasters)."""

    pixels: np.ndarray
    bit_depth: int
    scale_bits: int
    sha256: str
    tags: DicomTags


def read_source(path: Path, name: str, max_pixels: int | None = None) -> SourceImage:
    """Read any supported image at its own depth; nothing is decoded beyond ``max_pixels``."""
    data = read_bytes(path, name)
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() in DICOM_SUFFIXES or data[128:132] == b"DICM":
        pixels, bits, tags = decode_dicom_tags(data, name, max_pixels)
        return SourceImage(pixels, bits, 16, digest, tags)
    pixels, _ = decode_raster_native(data, name, max_pixels)
    bits = declared_bits(data, pixels)
    return SourceImage(pixels, bits, bits, digest, DicomTags())


def declared_bits(data: bytes, pixels: np.ndarray) -> int:
    """The bit depth a raster file declares: a PNG's sBIT chunk when present, else 8 or 16 from
    the container. Never the image's own maximum, which differs from film to film."""
    if pixels.dtype == np.uint8:
        return 8
    at = data.find(b"sBIT", 0, max(0, data.find(b"IDAT")))
    if data[:8] == b"\x89PNG\r\n\x1a\n" and at > 0 and 1 <= data[at + 4] <= 16:
        return int(data[at + 4])
    return 16


def read_mask(paths: list[Path], names: list[str], shape: tuple[int, int],
              max_pixels: int | None = None) -> np.ndarray:
    """Union of one or more mask files as (H, W) bool; any non-zero pixel is lesion.

    Multi-part masks (BUSI's ``_mask_1``, ``_mask_2``) are merged. A mask whose size differs from
    its image's ``shape`` is an error, not silently resized: it may belong to another image.
    """
    merged = np.zeros(shape, dtype=bool)
    for path, name in zip(paths, names, strict=True):
        pixels, _ = decode_raster_native(read_bytes(path, name), name, max_pixels)
        if pixels.shape != shape:
            raise SampleError(name, f"mask is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but its "
                                    f"image is {shape[1]}x{shape[0]}")
        merged |= pixels > 0
    return merged


def encode_png(pixels: np.ndarray) -> bytes:
    """Deterministic PNG bytes of a uint8 (H, W) or (H, W, C) array (same pixels, same bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def load_png(path: Path) -> np.ndarray:
    """A PNG written by ``encode_png`` back as a uint8 array (OpenCV: faster than PIL here)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise MissingInputError(f"{path}: missing or unreadable PNG")
    return pixels
