"""The one decode + resize: colour order, conversions, orientation, and bad files."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.runtime.preprocess import ImageError, decode_image, load_image, preprocess, resize


def _encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def test_colour_order_is_rgb(tmp_path):
    bgr_red = np.zeros((4, 4, 3), np.uint8)
    bgr_red[..., 2] = 255  # OpenCV stores BGR
    path = tmp_path / "red.png"
    path.write_bytes(_encode(bgr_red))
    assert load_image(path)[0, 0].tolist() == [255, 0, 0]


def test_grayscale_becomes_three_equal_channels():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    image = decode_image(_encode(gray))
    assert image.shape == (4, 4, 3)
    assert np.array_equal(image[..., 0], gray) and np.array_equal(image[..., 1], gray)


def test_rgba_drops_alpha_and_keeps_colour():
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 1] = 200  # green
    bgra[..., 3] = 0  # fully transparent: the stored colour is kept
    assert decode_image(_encode(bgra))[0, 0].tolist() == [0, 200, 0]


def test_16_bit_png_is_scaled_to_8_bits():
    deep = np.full((4, 4, 3), 257 * 100, np.uint16)
    image = decode_image(_encode(deep))
    assert image.dtype == np.uint8 and image[0, 0].tolist() == [100, 100, 100]


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_exif_orientation_is_applied():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255  # left half white
    rotated = decode_image(_with_exif_orientation(_encode(wide, ".jpg"), 6))  # 6: rotate 90 degrees clockwise
    assert rotated.shape[:2] == (40, 20)
    assert rotated[:20].mean() > 200 and rotated[20:].mean() < 50  # the white half is now on top


def test_empty_file_is_named(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file"):
        load_image(path)


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match=r"noise\.jpg: not a readable image"):
        load_image(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        load_image(tmp_path / "missing.png")


def test_preprocess_resizes_and_refuses_float_arrays():
    image = np.zeros((48, 64, 3), np.uint8)
    assert preprocess(image, 32).shape == (32, 32, 3)
    assert resize(image, (10, 20)).shape == (10, 20, 3)
    with pytest.raises(ImageError, match="uint8 RGB pixels 0-255; received an array of float32"):
        preprocess(image.astype(np.float32) / 255, 32)


FIXTURES = Path(__file__).parent.parent / "fixtures" / "images"  # written by tests/fixtures/make_images.py


def test_cmyk_jpeg_becomes_rgb():
    image = load_image(FIXTURES / "cmyk.jpg")
    assert image.shape == (8, 16, 3)
    assert np.abs(image.astype(int) - [255, 0, 0]).max() <= 3  # C0 M255 Y255 K0 is red


def test_palette_png_becomes_its_rgb_colours():
    image = load_image(FIXTURES / "palette.png")
    assert image[:, :8].reshape(-1, 3).tolist() == [[10, 200, 30]] * 64
    assert image[:, 8:].reshape(-1, 3).tolist() == [[250, 20, 100]] * 64


def test_tiff_and_webp_are_read():
    image = np.full((6, 6, 3), (20, 120, 220), np.uint8)
    for ext in (".tif", ".webp"):
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
        ok, data = cv2.imencode(ext, image, params)
        assert ok
        assert decode_image(data.tobytes()).reshape(-1, 3).tolist() == [[220, 120, 20]] * 36  # BGR written, RGB read


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.95])
def test_truncated_jpeg_is_refused_on_every_opencv(keep):
    ok, data = cv2.imencode(".jpg", cv2.resize(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), (120, 90)))
    data = data.tobytes()
    with pytest.raises(ImageError, match="truncated JPEG"):
        decode_image(data[: int(len(data) * keep)], "cut.jpg")
    assert decode_image(data + b"\x00" * 16).shape == (90, 120, 3)  # padding after the end marker is fine


def test_jpeg_with_exif_thumbnail_marker_is_still_checked_to_its_end():
    ok, data = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = data.tobytes()
    payload = b"Exif\x00\x00" + b"\xff\xd8fake thumbnail\xff\xd9"  # an embedded end marker inside APP1
    with_app1 = data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    assert decode_image(with_app1).shape == (16, 16, 3)
    with pytest.raises(ImageError, match="truncated JPEG"):
        decode_image(with_app1[:-40])


@pytest.mark.parametrize("head, kind", [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
    (b"GIF89a\x01\x00\x01\x00", "GIF"),
    (b"%PDF-1.7\n", "PDF"),
    (b'<?xml version="1.0"?><svg', "SVG"),
])
def test_unsupported_formats_are_named(head, kind):
    with pytest.raises(ImageError, match=f"photo.jpg: .*{kind}.*convert it to JPEG or PNG"):
        decode_image(head + b"\x00" * 64, "photo.jpg")
