"""The one decode + resize used by training, calibration, eval, classify and camera.

Every edgeclf model takes RGB pixels 0-255 (the model owns its normalization), so
preprocessing is only: decode to 8-bit RGB, then resize to the model's square input.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeclf.runtime.errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# Leading bytes of formats OpenCV does not read, so a skipped file says what it really is.
_UNSUPPORTED_SIGNATURES = (
    (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"), (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"), (b"PK\x03\x04", "a zip archive"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif")


class ImageError(UserError, ValueError):
    """A file that cannot be used as an image; the message names the file and why."""


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decodes encoded image bytes to an (H, W, 3) uint8 RGB array.

    OpenCV's IMREAD_COLOR applies the EXIF orientation, expands grayscale and palette
    images, converts CMYK JPEGs, scales 16-bit images to 8 bits and drops an alpha
    channel (the stored colour under transparent pixels is kept).

    Raises:
        ImageError: empty or undecodable data.
    """
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if buffer.size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    kind = _unsupported_kind(buffer[:16].tobytes())
    if kind:
        raise ImageError(f"{name}: {kind}, a format edgeclf does not read; convert it to JPEG or PNG")
    if buffer[:2].tobytes() == b"\xff\xd8" and not _jpeg_complete(buffer.tobytes()):
        raise ImageError(f"{name}: truncated JPEG (the file ends before its end-of-image marker)")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{name}: not a readable image (OpenCV could not decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _unsupported_kind(head: bytes) -> str | None:
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "a HEIC/AVIF image (iPhone photos)"
    if head.lstrip()[:5] in (b"<?xml", b"<svg "):
        return "an SVG/XML file"
    return next((kind for signature, kind in _UNSUPPORTED_SIGNATURES if head.startswith(signature)), None)


def _jpeg_complete(data: bytes) -> bool:
    """True when a JPEG's compressed data is followed by its end-of-image marker (FFD9).

    Header segments are skipped by their lengths, so an EXIF thumbnail's own FFD9 does not count;
    inside entropy-coded data a 0xFF byte is always stuffed (FF00) or a restart/scan marker. Some
    OpenCV builds decode a truncated JPEG with grey rows and only a warning; this check makes the
    outcome the same everywhere.
    """
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return True  # not a segment structure we understand: let the decoder judge
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xDA:  # start of scan: the compressed data follows
            return data.find(b"\xff\xd9", position) != -1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return False


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file into an (H, W, 3) uint8 RGB array.

    Raises:
        ImageError: missing, empty or undecodable file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes an RGB image to the model input (squashing, no crop).

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.

    Args:
        image: (H, W, 3) uint8.
        size: side of a square input, or (height, width).
    """
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] * image.shape[1] > height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def preprocess(source: str | os.PathLike | np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Image file or RGB array -> (size, size, 3) uint8 RGB, ready for any edgeclf model."""
    image = source if isinstance(source, np.ndarray) else load_image(source)
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 RGB pixels 0-255; received an array of {image.dtype}. "
                         "Convert with np.clip(x, 0, 255).astype(np.uint8) (scale [0, 1] data by 255 first).")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return resize(np.ascontiguousarray(image), size)
