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
from edgeclf.runtime.imageheader import Header, HeaderError, read_header

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# Leading bytes of formats OpenCV does not read, so a skipped file says what it really is.
_UNSUPPORTED_SIGNATURES = (
    (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"), (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"), (b"PK\x03\x04", "a zip archive"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif")


class ImageError(UserError, ValueError):
    """A file that cannot be used as an image; the message names the file and why."""


# The pixel budget of one decode: 50 MP holds every phone and DSLR photo up to 8192 x 6100 and costs at most
# 150 MB of decoded pixels; a file whose header claims more is refused before anything is allocated.
DEFAULT_MAX_PIXELS = 50_000_000
# OpenCV's own limit, a second line behind the header check (edgeclf/__init__.py sets it before cv2 loads
# unless the environment already does); --max-pixels cannot go past it.
OPENCV_PIXEL_LIMIT = 1 << 28
# A file in a format whose size no header reader here knows is decoded only when it is this small.
UNSIZED_MAX_BYTES = 1 << 20
# A file this much larger than any image within the budget can be is refused before it is read.
_BYTES_PER_PIXEL_BOUND = 8
_REDUCTIONS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def opencv_pixel_limit() -> int:
    """The pixel limit OpenCV enforces in this process (OPENCV_IO_MAX_IMAGE_PIXELS, else OpenCV's 2^30)."""
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
    except ValueError:
        return 1 << 30


def check_max_pixels(value: object, flag: str = "--max-pixels") -> int:
    """Validates a pixel budget; returns it.

    Raises:
        ImageError: not an integer in [1, OpenCV's limit].
    """
    limit = opencv_pixel_limit()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        hint = (f" OpenCV refuses more than {limit} pixels here; to go higher set OPENCV_IO_MAX_IMAGE_PIXELS in the "
                "environment too." if isinstance(value, int) and value > limit else "")
        raise ImageError(f"{flag} must be an integer in [1, {limit}] (pixels of one image); received {value!r}. "
                         f"Use e.g. {flag} {DEFAULT_MAX_PIXELS}.{hint}")
    return value


def _over_budget(name: str, width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(f"{name}: {width}x{height} pixels ({width * height / 1e6:.1f} MP) is over the pixel budget of "
                      f"{max_pixels / 1e6:g} MP (--max-pixels {max_pixels}); downscale the image or raise --max-pixels")


def _reduction(header: Header, at_least: tuple[int, int] | None) -> tuple[int, int]:
    """(factor, imread flag): the largest JPEG scale-down (8, 4, 2) that keeps both sides >= the larger side of
    `at_least` (orientation-proof: EXIF may swap the sides), or (1, IMREAD_COLOR)."""
    if header.format == "JPEG" and at_least is not None:
        side = max(at_least)
        for factor, flag in _REDUCTIONS:
            if -(-min(header.width, header.height) // factor) >= side:
                return factor, flag
    return 1, cv2.IMREAD_COLOR


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS,
                 at_least: tuple[int, int] | None = None) -> np.ndarray:
    """Decodes encoded image bytes to an (H, W, 3) uint8 RGB array, within a pixel budget.

    The size is read from the header first (`edgeclf.runtime.imageheader`) and an image over
    `max_pixels` is refused before OpenCV allocates anything; the decoded size must then match the
    header. OpenCV's IMREAD_COLOR applies the EXIF orientation, expands grayscale and palette
    images, converts CMYK JPEGs, scales 16-bit images to 8 bits and drops an alpha channel (the
    stored colour under transparent pixels is kept).

    Args:
        at_least: (height, width) the caller resizes to next. A JPEG at least twice that size in both
            sides is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (the largest that stays >= it), which
            costs a fraction of the memory and time; every caller that passes the same size gets the same
            pixels, so training, calibration, eval and the device see the same tensor.

    Raises:
        ImageError: empty, undecodable, over the budget, or a header that does not match the pixels.
    """
    raw = data if isinstance(data, (bytes, bytearray)) else np.asarray(data, dtype=np.uint8).tobytes()
    if len(raw) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    kind = _unsupported_kind(raw[:16])
    if kind:
        raise ImageError(f"{name}: {kind}, a format edgeclf does not read; convert it to JPEG or PNG")
    if raw[:2] == b"\xff\xd8" and not _jpeg_complete(raw):
        raise ImageError(f"{name}: truncated JPEG (the file ends before its end-of-image marker)")
    try:
        header = read_header(raw)
    except HeaderError as exc:
        raise ImageError(f"{name}: not a readable image ({exc})") from exc
    if header is None and len(raw) > UNSIZED_MAX_BYTES:
        raise ImageError(f"{name}: not a readable image (no PNG, JPEG, BMP, TIFF or WebP header whose size could be "
                         f"checked, and {len(raw) / 2**20:.1f} MiB is too large to decode unchecked); convert it to "
                         "JPEG or PNG")
    if header is not None and header.pixels > max_pixels:
        raise _over_budget(name, header.width, header.height, max_pixels)
    factor, flag = _reduction(header, at_least) if header is not None else (1, cv2.IMREAD_COLOR)
    try:
        image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), flag)
    except cv2.error as exc:  # OpenCV's own size limit (OPENCV_IO_MAX_IMAGE_PIXELS) or a decoder failure
        raise ImageError(f"{name}: not a readable image (OpenCV refused it: {str(exc).strip().splitlines()[-1]})") from exc
    if image is None:
        raise ImageError(f"{name}: not a readable image (OpenCV could not decode it)")
    height, width = image.shape[:2]
    if header is None and height * width > max_pixels:
        raise _over_budget(name, width, height, max_pixels)
    if header is not None:
        expected = (-(-header.height // factor), -(-header.width // factor))
        if (height, width) not in (expected, expected[::-1]):  # EXIF orientation may swap the sides
            raise ImageError(f"{name}: not a readable image (decoded {width}x{height} pixels, but its {header.format} "
                             f"header says {expected[1]}x{expected[0]}: a damaged or forged file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second copy of a large image


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


def read_file(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of an image file, refusing one larger than any image within the budget could be.

    Raises:
        ImageError: missing or unreadable, or too large for `max_pixels`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            bound = max_pixels * _BYTES_PER_PIXEL_BOUND + UNSIZED_MAX_BYTES
            if size > bound:
                raise ImageError(f"{path}: {size / 2**20:.0f} MiB is larger than any image within the pixel budget of "
                                 f"{max_pixels / 1e6:g} MP can be (--max-pixels {max_pixels}); downscale the image or "
                                 "raise --max-pixels")
            return handle.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               at_least: tuple[int, int] | None = None) -> np.ndarray:
    """Reads an image file into an (H, W, 3) uint8 RGB array (see `decode_image` for the arguments).

    Raises:
        ImageError: missing, empty, undecodable or over-budget file.
    """
    return decode_image(read_file(path, max_pixels), str(path), max_pixels, at_least)


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


def preprocess(source: str | os.PathLike | np.ndarray, size: int | tuple[int, int],
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image file or RGB array -> (size, size, 3) uint8 RGB, ready for any edgeclf model.

    A file is decoded within `max_pixels`, a large JPEG at a reduced scale (see `decode_image`).
    """
    target = (size, size) if isinstance(size, int) else tuple(size)
    image = source if isinstance(source, np.ndarray) else load_image(source, max_pixels, target)
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 RGB pixels 0-255; received an array of {image.dtype}. "
                         "Convert with np.clip(x, 0, 255).astype(np.uint8) (scale [0, 1] data by 255 first).")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return resize(np.ascontiguousarray(image), size)
