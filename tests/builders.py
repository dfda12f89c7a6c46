"""Small real inputs built on disk for tests: images with structure, BUSI layouts, configs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from controlbreast.config import Config, parse_config
from controlbreast.diffusion.config import PixelModelConfig
from controlbreast.diffusion.models import ClassEmbedding, Denoiser, controlnet_from_unet, pixel_unet
from controlbreast.sections import PathsConfig

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


def mammogram(seed: int, side: str = "L", shape: tuple[int, int] = (160, 120),
              lesion: tuple[int, int, int] | None = (80, 40, 6)) -> tuple[np.ndarray, np.ndarray]:
    """A (H, W) 12-bit film in uint16 and its (H, W) bool lesion mask, like a screening mammogram:
    a textured half-ellipse of tissue against the chest-wall edge (left for ``side`` "L", right for
    "R", as films are displayed), a brighter pectoral triangle in the top chest-wall corner, a bright
    lesion disc (``lesion`` = (row, column from the chest wall, radius), or None) and a burned-in
    label in the far bottom corner, all on black."""
    height, width = shape
    reach, muscle_width, muscle_height = np.random.default_rng(seed).uniform([0.6, 0.2, 0.3], [0.8, 0.4, 0.5])
    tissue = np.zeros(shape, np.uint8)
    cv2.ellipse(tissue, (0, height // 2), (int(reach * width), int(0.4 * height)), 0, -90, 90, 1, -1)
    texture = smooth_image(seed, shape).astype(np.float32) * 6 + 1200
    film = np.where(tissue > 0, texture, 0)
    pectoral = np.array([[0, int(0.1 * height)], [int(muscle_width * width), int(0.1 * height)],
                         [0, int(muscle_height * height)]])
    muscle = np.zeros(shape, np.uint8)
    cv2.fillPoly(muscle, [pectoral], 1)
    film = np.where((muscle > 0) & (tissue > 0), film + 700, film)
    mask = np.zeros(shape, bool)
    if lesion is not None:
        disc = disc_mask(shape, (lesion[1], lesion[0]), lesion[2]) > 0
        film, mask = np.where(disc, film + 1200, film), disc
    film[height - 12:height - 4, width - 30:width - 6] = 4000  # burned-in label "L CC"
    if side == "R":
        film, mask = film[:, ::-1], mask[:, ::-1]
    return np.clip(film, 0, 4095).astype(np.uint16), np.ascontiguousarray(mask)


def write_png_films(tmp_path: Path, spacing_column: list[str] | None = None, count: int = 4) -> dict:
    """``count`` 12-bit PNG films with lesion masks (benign, malignant alternately) and ``set.csv``
    (path,label,mask_path[,pixel_spacing_mm]) under ``tmp_path``; returns the ``data`` section that
    reads them as mammograms cut into 32 px patches at 0.5 mm/px."""
    root = tmp_path / "png"
    root.mkdir(parents=True)
    lines = ["path,label,mask_path" + (",pixel_spacing_mm" if spacing_column else "")]
    for n in range(count):
        film, mask = mammogram(60 + n, "L")
        cv2.imwrite(str(root / f"m{n}.png"), film)
        cv2.imwrite(str(root / f"m{n}_mask.png"), mask.astype(np.uint8) * 255)
        spacing = f",{spacing_column[n]}" if spacing_column else ""
        lines.append(f"m{n}.png,{('benign', 'malignant')[n % 2]},m{n}_mask.png{spacing}")
    (tmp_path / "set.csv").write_text("\n".join(lines) + "\n")
    return {"source": "csv", "root": str(root), "manifest": str(tmp_path / "set.csv"),
            "modality": "mammography", "bit_depth": 12, "image_size": 32,
            "classes": ["normal", "benign", "malignant"],
            "patches": {"enabled": True, "mm_per_px": 0.5, "background": 1}}


def write_csv_ultrasound(root: Path, masks: bool) -> dict:
    """Six ultrasound PNGs per class in ``root`` and its ``set.csv``, with masks for the lesion
    images or none; returns the ``data`` section that reads them."""
    root.mkdir(parents=True)
    lines = ["path,label" + (",mask_path" if masks else "")]
    for n in range(18):
        label = ("normal", "benign", "malignant")[n % 3]
        cv2.imwrite(str(root / f"u{n}.png"), smooth_image(100 + n))
        mask = ""
        if masks and label != "normal":
            disc = cv2.circle(np.zeros((96, 128), np.uint8), (40, 40), 9, 255, -1)
            cv2.imwrite(str(root / f"u{n}_mask.png"), disc)
            mask = f"u{n}_mask.png"
        lines.append(f"u{n}.png,{label}" + (f",{mask}" if masks else ""))
    (root / "set.csv").write_text("\n".join(lines) + "\n")
    return {"source": "csv", "root": str(root), "manifest": str(root / "set.csv")}


def write_dicom_films(root: Path, count: int = 4) -> dict:
    """``count`` DICOM mammograms (MG, 0.5 mm PixelSpacing, a PatientID each) with lesion masks and
    their ``set.csv``; returns the ``data`` section that reads them as 32 px patches."""
    root.mkdir(parents=True)
    lines = ["path,label,mask_path"]
    for n in range(count):
        film, mask = mammogram(70 + n, "L")
        write_dicom(root / f"f{n}.dcm", film, patient=f"P-{n}", Modality="MG", PixelSpacing=[0.5, 0.5])
        cv2.imwrite(str(root / f"f{n}_mask.png"), mask.astype(np.uint8) * 255)
        lines.append(f"f{n}.dcm,{('benign', 'malignant')[n % 2]},f{n}_mask.png")
    (root / "set.csv").write_text("\n".join(lines) + "\n")
    return {"source": "csv", "root": str(root), "manifest": str(root / "set.csv"), "image_size": 32,
            "classes": ["normal", "benign", "malignant"], "patches": {"enabled": True, "mm_per_px": 0.5}}


def make_config(tmp_path: Path, **sections: dict) -> Config:
    """A Config whose outputs go under ``tmp_path``; ``sections`` override params sections."""
    paths = PathsConfig.model_fields  # every path under tmp_path: a test never writes into the repo
    raw = {"paths": {name: str(tmp_path / name) for name in paths},
           "data": {"workers": 1},
           # what a test stage runs unless it asks: no tuning, no external set, the validation sampler,
           # no recipe arms beyond the built-in ones
           "tune": {"n_trials": 0}, "evaluate": {"external": []}, "generate": {"sampling": None},
           "classifier": {"recipes": {}}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return parse_config(raw, "test-params")


def hospital_external(tmp_path: Path) -> dict:
    """An ``evaluate`` section with one external csv set whose paths name a site and a patient."""
    site = tmp_path / "st-mary-site" / "patient-jane-doe"
    return {"external": [{"name": "site_b", "source": "csv", "root": str(site),
                          "manifest": str(site / "labels.csv")}]}


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME2", patient: str = "P-42",
                window: tuple[float, float] | None = None, **tags) -> None:
    """A DICOM of ``pixels`` ((H, W), or (F, H, W) for a multi-frame file) with a name, birth and
    study date to find if they leak; ``tags`` set more attributes (Modality="MG",
    ImageLaterality="L", PixelSpacing=[0.1, 0.1], ...)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = patient, "Doe^Jane"
    ds.PatientBirthDate, ds.StudyDate = "19610704", "20240219"
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    for name, value in tags.items():
        setattr(ds, name, value)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit gray pixels and whose data is a
    few bytes: what a decompression bomb looks like before it is decoded (nothing to allocate)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))

def write_csv_set(tmp_path: Path, lines: list[str], images: dict[str, np.ndarray]) -> dict:
    """A csv source under tmp_path/set: ``images`` maps a file name to its (H, W) uint8 pixels;
    ``lines`` are the manifest's rows (path,label,mask_path). Returns the ``data`` section's keys."""
    root = tmp_path / "set"
    root.mkdir(exist_ok=True)
    for name, pixels in images.items():
        cv2.imwrite(str(root / name), pixels)
    (tmp_path / "m.csv").write_text("\n".join(["path,label,mask_path", *lines]) + "\n")
    return {"source": "csv", "root": str(root), "manifest": str(tmp_path / "m.csv")}


def assert_groups_within_one_split(rows: list[dict]) -> None:
    """Every group of manifest ``rows`` lies in one split (no patient or copy straddles two)."""
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["group"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits.values())


TINY_PIXEL = {"block_out_channels": [8, 16], "attention": [False, True], "cross_attention_dim": 16,
              "attention_head_dim": 4, "norm_num_groups": 4, "control_embedding_channels": 8}
TINY_TRAIN = {"steps": 4, "batch_size": 4, "learning_rate": 1e-3, "lr_warmup_steps": 1,
              "checkpoint_every": 2, "validate_every": 2, "num_validation": 3, "log_every": 2}
TINY_SAMPLING = {"steps": 3, "batch_size": 4}


def write_tiny_sd(folder: Path, prompt_words: str = "a breast ultrasound image of normal tissue with benign "
                  "malignant lesion") -> Path:
    """A Stable-Diffusion-layout folder (vae, text_encoder, tokenizer, unet, scheduler) built from
    config with tiny widths, as diffusers' tests do, so the latent back end runs offline in seconds.

    The CLIP tokenizer gets a character-level vocabulary of the prompt words' letters.
    """
    import json

    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = sorted(set(prompt_words.replace(" ", "")))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in letters:
        vocab.setdefault(letter, len(vocab))
        vocab.setdefault(f"{letter}</w>", len(vocab))
    raw = folder / "raw-tokenizer"
    raw.mkdir(parents=True)
    (raw / "vocab.json").write_text(json.dumps(vocab))
    (raw / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=16)
    tokenizer.save_pretrained(folder / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                 num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=16,
                                 bos_token_id=0, eos_token_id=1, pad_token_id=1)
                  ).save_pretrained(folder / "text_encoder")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  norm_num_groups=4, sample_size=32).save_pretrained(folder / "vae")
    UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                         layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                         up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                         attention_head_dim=4, norm_num_groups=4).save_pretrained(folder / "unet")
    scheduler = DDPMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear")
    scheduler.save_pretrained(folder / "scheduler")
    return folder


def tiny_config(tmp_path: Path, prepared: Config, **sections: dict) -> Config:
    """A config reading ``prepared``'s data and controls, writing models under ``tmp_path``."""
    paths = {"prepared": str(prepared.paths.prepared), "controls": str(prepared.paths.controls)}
    defaults = {"paths": paths, "data": {"image_size": 32},
                "diffusion": {"pixel": TINY_PIXEL}, "train_base": TINY_TRAIN,
                "train_controlnet": TINY_TRAIN, "sampling": TINY_SAMPLING}
    merged = {name: {**defaults.get(name, {}), **sections.get(name, {})}
              for name in {*defaults, *sections}}
    return make_config(tmp_path, **merged)


def tiny_denoiser() -> Denoiser:
    """A random tiny pixel model whose zero convolutions are not zero, so the control matters."""
    torch.manual_seed(0)
    unet = pixel_unet(PixelModelConfig(**TINY_PIXEL), image_size=32)
    controlnet = controlnet_from_unet(unet, control_channels=1, embedding_channels=(8,))
    for name, parameter in controlnet.named_parameters():
        if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
            parameter.data.normal_(0, 0.05)
    return Denoiser(unet, ClassEmbedding(num_classes=3, dim=16), controlnet).eval()
