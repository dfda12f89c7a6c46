"""Reading source images of any common medical format into 8-bit grayscale, and writing PNGs.

Sources hand us PNG/JPEG/TIFF at 8 or 16 bits (often RGB though the content is grayscale) and
DICOM. Everything becomes a (H, W) uint8 array here, or a ``SampleError`` that names the file and
the problem: zero bytes, truncated or corrupt data, an unsupported mode, a multi-frame DICOM.
"""

from __future__ import annotations

import hashlib
import io
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


def to_uint8(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Scale integer or float pixels to uint8 and report the source bit depth.

    Integers keep their absolute scale: a 12-bit image stored in 16 bits maps its 0..4095 range,
    not its own min..max, so two images of one scanner stay comparable. Floats are min-max scaled.
    """
    if pixels.dtype == np.uint8:
        return pixels, 8
    if np.issubdtype(pixels.dtype, np.integer):
        values = pixels.astype(np.int64)
        if values.min() < 0:
            values = values - values.min()
        bits = max(8, int(values.max()).bit_length())
        scaled = values * 255.0 / float(2**bits - 1)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8), bits
    return _min_max_uint8(pixels.astype(np.float64)), 32


def _min_max_uint8(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(np.rint((values - low) * 255.0 / (high - low)), 0, 255).astype(np.uint8)


def _pil_to_gray(image: Image.Image, name: str) -> tuple[np.ndarray, int]:
    if image.mode in _CONVERTIBLE_MODES:
        image = image.convert("L")
    elif image.mode not in _GRAY_MODES:
        raise SampleError(name, f"unsupported image mode {image.mode!r} (expected grayscale or RGB)")
    pixels = np.asarray(image)
    if pixels.ndim != 2:
        raise SampleError(name, f"expected a 2-D image, got shape {pixels.shape}")
    return to_uint8(pixels)


def decode_raster(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode PNG/JPEG/TIFF bytes to (H, W) uint8 and the source bit depth."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise SampleError(name, f"has {image.n_frames} frames; expected one image")
            image.load()
            return _pil_to_gray(image, name)
    except UnidentifiedImageError:
        raise SampleError(name, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise SampleError(name, f"corrupt or truncated image ({error})") from None


def decode_dicom(data: bytes, name: str) -> tuple[np.ndarray, int, str | None]:
    """Decode a DICOM to (H, W) uint8 with its modality and VOI LUT (window) applied.

    MONOCHROME1 (white = low values) is inverted. Returns the PatientID too, which callers must
    only ever store hashed.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for bad files
        raise SampleError(name, f"corrupt or unreadable DICOM ({error})") from None
    if pixels.ndim != 2:
        raise SampleError(name, f"DICOM pixel data has shape {pixels.shape}; expected one 2-D frame")
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset).astype(np.float64)
    if str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        values = values.max() - values
    bits = int(dataset.get("BitsStored", 8))
    patient = str(dataset.get("PatientID", "")).strip() or None
    return _min_max_uint8(values), bits, patient


def read_gray(path: Path, name: str) -> tuple[np.ndarray, int, str, str | None]:
    """Read any supported image: (H, W) uint8, bit depth, sha256 of the file, DICOM PatientID."""
    data = read_bytes(path, name)
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() in DICOM_SUFFIXES or data[128:132] == b"DICM":
        pixels, bits, patient = decode_dicom(data, name)
        return pixels, bits, digest, patient
    pixels, bits = decode_raster(data, name)
    return pixels, bits, digest, None


def read_mask(paths: list[Path], names: list[str], shape: tuple[int, int]) -> np.ndarray:
    """Union of one or more mask files as (H, W) bool; any non-zero pixel is lesion.

    Multi-part masks (BUSI's ``_mask_1``, ``_mask_2``) are merged. A mask whose size differs from
    its image's ``shape`` is an error, not silently resized: it may belong to another image.
    """
    merged = np.zeros(shape, dtype=bool)
    for path, name in zip(paths, names, strict=True):
        pixels, _ = decode_raster(read_bytes(path, name), name)
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
