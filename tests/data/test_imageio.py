import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from builders import header_only_png, write_dicom
from controlbreast.data.imageio import (
    DicomTags,
    encode_png,
    read_mask,
    read_source,
    scale_bits,
    to_uint8,
)
from controlbreast.errors import SampleError


def read_native(path, name, max_pixels=None):
    """``read_source`` as (pixels, declared bit depth, sha256, PatientID)."""
    source = read_source(path, name, max_pixels)
    return source.pixels, source.bit_depth, source.sha256, source.tags.patient


def read_gray(path, name, max_pixels=None):
    """``read_source`` to (H, W) uint8, with bit depth, sha256 and PatientID."""
    source = read_source(path, name, max_pixels)
    return to_uint8(source.pixels, source.scale_bits)[0], source.bit_depth, source.sha256, source.tags.patient


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_rgb_png_becomes_grayscale_with_file_hash(tmp_path):
    gray = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) % 256
    path = tmp_path / "rgb.png"
    path.write_bytes(png_bytes(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2)))
    pixels, bits, digest, patient = read_gray(path, "rgb.png")
    assert pixels.dtype == np.uint8 and pixels.shape == (48, 64) and bits == 8
    np.testing.assert_array_equal(pixels, gray)
    assert len(digest) == 64 and patient is None


def test_sixteen_bit_keeps_absolute_scale():
    twelve_bit = np.array([[0, 4095], [2048, 1024]], dtype=np.uint16)
    pixels, bits = to_uint8(twelve_bit)
    assert bits == 12
    assert pixels.tolist() == [[0, 255], [128, 64]]


def test_sixteen_bit_png_and_tiff(tmp_path):
    values = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    for name in ("deep.png", "deep.tif"):
        Image.fromarray(values).save(tmp_path / name)
        pixels, bits, _, _ = read_gray(tmp_path / name, name)
        assert bits == 16 and pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty (0 bytes)"),
        (b"this is not an image at all", "not a readable image"),
        (None, "corrupt or truncated"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path, content, problem):
    if content is None:
        content = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
        content = content[: len(content) // 2]
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(SampleError) as error:
        read_gray(path, "benign/bad.png")
    assert str(error.value).startswith("benign/bad.png: ") and problem in str(error.value)


def test_missing_file_and_unsupported_mode(tmp_path):
    with pytest.raises(SampleError, match="file not found"):
        read_gray(tmp_path / "nope.png", "nope.png")
    Image.new("CMYK", (8, 8)).save(tmp_path / "cmyk.jpg")
    with pytest.raises(SampleError, match="unsupported image mode 'CMYK'"):
        read_gray(tmp_path / "cmyk.jpg", "cmyk.jpg")


def test_mask_parts_merge_and_size_mismatch(tmp_path):
    first, second = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    first[1, 1], second[8, 8] = 255, 255
    (tmp_path / "a.png").write_bytes(encode_png(first))
    (tmp_path / "b.png").write_bytes(encode_png(second))
    merged = read_mask([tmp_path / "a.png", tmp_path / "b.png"], ["a.png", "b.png"], (10, 10))
    assert merged.sum() == 2 and merged[1, 1] and merged[8, 8]
    with pytest.raises(SampleError, match="mask is 10x10 \\(WxH\\) but its image is 12x10"):
        read_mask([tmp_path / "a.png"], ["a.png"], (10, 12))


def test_dicom_voi_lut_and_monochrome1(tmp_path):
    ramp = np.tile(np.linspace(0, 4000, 16), (8, 1))
    write_dicom(tmp_path / "m2.dcm", ramp, window=(2000, 2000))
    plain, bits, _, patient = read_gray(tmp_path / "m2.dcm", "m2.dcm")
    assert bits == 12 and patient == "P-42"
    assert plain[0, 0] == 0 and plain[0, -1] == 255
    assert (plain[0, :4] == 0).all() and (plain[0, -4:] == 255).all()  # window clips the ends
    write_dicom(tmp_path / "m1.dcm", ramp, photometric="MONOCHROME1", window=(2000, 2000))
    inverted, _, _, _ = read_gray(tmp_path / "m1.dcm", "m1.dcm")
    np.testing.assert_array_equal(inverted, 255 - plain)


def test_corrupt_dicom(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    with pytest.raises(SampleError, match=r"broken\.dcm: corrupt or unreadable DICOM"):
        read_gray(path, "broken.dcm")


def test_huge_png_is_refused_from_its_header_naming_the_file(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(header_only_png(12000, 12000))
    assert path.stat().st_size < 200
    with pytest.raises(SampleError) as error:
        read_gray(path, "benign/bomb.png", max_pixels=100_000_000)
    assert str(error.value) == ("benign/bomb.png: image is 12000x12000 (WxH) = 144 MP, above "
                                "data.max_pixels (100 MP)")
    path.write_bytes(header_only_png(20000, 20000))  # Pillow refuses this one itself: still named
    with pytest.raises(SampleError, match=r"^benign/bomb\.png: image too large: above Pillow's"):
        read_gray(path, "benign/bomb.png", max_pixels=100_000_000)
    path.write_bytes(header_only_png(3000, 2000))
    with pytest.raises(SampleError, match=r"^bomb\.png: image is 3000x2000 \(WxH\) = 6 MP"):
        read_gray(path, "bomb.png", max_pixels=5_000_000)


def test_huge_dicom_is_refused_before_its_pixels_are_decoded(tmp_path):
    write_dicom(tmp_path / "big.dcm", np.zeros((4, 4)))
    dataset = pydicom.dcmread(tmp_path / "big.dcm")
    dataset.Rows, dataset.Columns = 30000, 20000  # the 32 bytes of pixel data are never read
    dataset.save_as(tmp_path / "big.dcm")
    with pytest.raises(SampleError, match=r"^big\.dcm: image is 20000x30000 \(WxH\) = 600 MP"):
        read_gray(tmp_path / "big.dcm", "big.dcm", max_pixels=100_000_000)


def test_sixteen_bit_stays_sixteen_bit_until_scaled(tmp_path):
    values = (np.linspace(0, 4095, 40 * 60).reshape(40, 60)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    pixels, bits, _, _ = read_native(tmp_path / "deep.png", "deep.png")
    assert pixels.dtype == np.uint16 and scale_bits(pixels) == 12
    assert bits == 16  # the container's depth, not the image's own maximum
    np.testing.assert_array_equal(pixels, values)
    small = to_uint8(pixels[::2, ::2], 12)[0]  # a smaller copy keeps the full image's scale
    assert small.dtype == np.uint8 and small.max() < 255 and small.min() == 0
    write_dicom(tmp_path / "m2.dcm", np.tile(np.linspace(0, 4000, 16), (8, 1)))
    pixels, bits, _, _ = read_native(tmp_path / "m2.dcm", "m2.dcm")
    assert pixels.dtype == np.uint16 and bits == 12  # BitsStored: 0..4095 spread over 16 bits
    assert pixels.max() == round(4000 / 4095 * 65535)


def test_one_raw_value_is_one_grey_level_in_every_film(tmp_path):
    """Two films of one scanner, one bright and one dark: a shared raw value maps alike."""
    bright = np.tile(np.linspace(0, 4000, 16), (8, 1)).astype(np.uint16)
    dark = (bright // 4).astype(np.uint16)  # max 1000: per-image scaling would stretch it to 255
    for name, values in (("bright", bright), ("dark", dark)):
        write_dicom(tmp_path / f"{name}.dcm", values)
        Image.fromarray(values).save(tmp_path / f"{name}.png")
    gray = {n: read_gray(tmp_path / n, n)[0] for n in ("bright.dcm", "dark.dcm", "bright.png", "dark.png")}
    assert gray["dark.dcm"].max() == round(1000 / 4095 * 255) and gray["bright.dcm"].max() == 249
    assert gray["dark.png"].max() == round(1000 / 65535 * 255)
    assert gray["bright.png"].max() == round(4000 / 65535 * 255)


def test_png_sbit_declares_the_depth(tmp_path):
    values = np.tile(np.linspace(0, 1000, 16), (8, 1)).astype(np.uint16)
    data = png_bytes(values)
    body = b"sBIT" + bytes([12])
    import struct
    import zlib
    chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    at = data.find(b"IDAT") - 4
    (tmp_path / "s.png").write_bytes(data[:at] + chunk + data[at:])
    pixels, bits, _, _ = read_gray(tmp_path / "s.png", "s.png")
    assert bits == 12 and pixels.max() == round(1000 / 4095 * 255)


def test_dicom_tags_and_multi_frame(tmp_path):
    write_dicom(tmp_path / "mg.dcm", np.full((8, 8), 100), Modality="MG", ImageLaterality="L",
                PixelSpacing=[0.07, 0.09])
    source = read_source(tmp_path / "mg.dcm", "mg.dcm")
    assert source.tags == DicomTags(patient="P-42", modality="MG", laterality="L", spacing_mm=0.08)
    write_dicom(tmp_path / "old.dcm", np.full((8, 8), 100), Laterality="R", ImagerPixelSpacing=[0.1, 0.1])
    assert read_source(tmp_path / "old.dcm", "old.dcm").tags.laterality == "R"
    assert read_source(tmp_path / "old.dcm", "old.dcm").tags.spacing_mm == 0.1
    write_dicom(tmp_path / "tomo.dcm", np.zeros((3, 8, 8)), Modality="MG")
    with pytest.raises(SampleError, match=r"tomo.dcm: multi-frame DICOM \(3 frames"):
        read_source(tmp_path / "tomo.dcm", "tomo.dcm")
