"""Small real inputs built on disk for tests: images with structure, BUSI layouts, configs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from controlbreast.config import Config, parse_config

BUSI_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "busi"


def smooth_image(seed: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A (H, W) uint8 image with smooth structure (like tissue), distinct per seed."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.normal(size=shape), (0, 0), sigmaX=6)
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    return (field * 200 + 20).astype(np.uint8)


def disc_mask(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    """(H, W) uint8 0/255 mask of one filled disc."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.circle(mask, centre, radius, 255, -1)
    return mask


def write_busi(root: Path, per_class: int = 6, start_seed: int = 0) -> Path:
    """A tiny BUSI-layout set: RGB PNGs, gapped numbers, a two-part mask, empty normal masks."""
    seed = start_seed
    for label in ("benign", "malignant", "normal"):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, per_class + 1):
            number = n * 2 + 1  # gaps: 3, 5, 7, ...
            image = smooth_image(seed)
            seed += 1
            rgb = np.repeat(image[:, :, None], 3, axis=2)
            cv2.imwrite(str(folder / f"{label} ({number}).png"), rgb)
            radius = 0 if label == "normal" else 12
            cv2.imwrite(str(folder / f"{label} ({number})_mask.png"),
                        disc_mask(image.shape, (40, 40), radius) if radius else
                        np.zeros(image.shape, np.uint8))
            if label == "benign" and n == 1:
                cv2.imwrite(str(folder / f"{label} ({number})_mask_1.png"),
                            disc_mask(image.shape, (90, 60), 8))
    return root


def make_config(tmp_path: Path, **sections: dict) -> Config:
    """A Config whose outputs go under ``tmp_path``; ``sections`` override params sections."""
    raw = {"paths": {"prepared": str(tmp_path / "prepared"), "controls": str(tmp_path / "controls"),
                     "metrics": str(tmp_path / "metrics"), "mlruns": str(tmp_path / "mlruns")},
           "data": {"workers": 1}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_config(raw, "test-params")


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME2", patient: str = "P-42",
                window: tuple[float, float] | None = None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = patient, "Doe^Jane"
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
