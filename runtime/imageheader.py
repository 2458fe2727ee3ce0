"""An image's width and height read from its header, without decoding a pixel.

The pixel budget (`edgeclf.runtime.preprocess`) is checked against these numbers before OpenCV
allocates anything, so a small file that claims 30,000 x 30,000 pixels costs a few kilobytes of
reading instead of gigabytes. Each reader follows the same field the decoder uses: PNG's IHDR,
a JPEG's first start-of-frame marker (found by walking the segments past APPn/EXIF), BMP's
info header, a TIFF's first IFD (either byte order, classic or BigTIFF), WebP's VP8/VP8L/VP8X
chunk, GIF's logical screen and the text header of PNM files.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass


class HeaderError(ValueError):
    """A file whose signature names a format but whose header is damaged; the message says what is wrong."""


@dataclass(frozen=True)
class Header:
    format: str  # "PNG", "JPEG", "BMP", "TIFF", "WebP", "GIF", "PNM"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes) -> Header | None:
    """The format and stored size of an encoded image.

    Returns:
        None when the signature is not one of the formats read here.

    Raises:
        HeaderError: a known signature whose header is cut short or holds an impossible size.
    """
    data = bytes(data)
    for signature, reader in _READERS:
        if data.startswith(signature) if isinstance(signature, bytes) else signature(data):
            format_name, width, height = reader(data)
            if width <= 0 or height <= 0:
                raise HeaderError(f"its {format_name} header states a size of {width}x{height} pixels")
            return Header(format_name, width, height)
    return None


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise HeaderError(f"its {what} header is cut short ({len(data)} bytes)")


def _png(data: bytes) -> tuple[str, int, int]:
    _need(data, 24, "PNG")
    if data[12:16] != b"IHDR":
        raise HeaderError("its PNG header does not start with IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return "PNG", width, height


# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); C4, C8 and CC are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> tuple[str, int, int]:
    position = 2
    while True:
        _need(data, position + 2, "JPEG")
        if data[position] != 0xFF:
            raise HeaderError(f"its JPEG header has no marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            position += 2
            continue
        if marker in (0xD9, 0xDA):
            raise HeaderError("its JPEG data starts before a frame header (no SOF marker)")
        _need(data, position + 4, "JPEG")
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if length < 2:
            raise HeaderError(f"its JPEG segment at byte {position} has length {length}")
        if marker in _SOF:
            _need(data, position + 9, "JPEG")
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return "JPEG", width, height
        position += 2 + length


def _bmp(data: bytes) -> tuple[str, int, int]:
    _need(data, 18, "BMP")
    info_size = int.from_bytes(data[14:18], "little")
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit unsigned sides
        _need(data, 22, "BMP")
        width, height = struct.unpack("<HH", data[18:22])
        return "BMP", width, height
    if info_size < 16:
        raise HeaderError(f"its BMP info header has size {info_size}")
    _need(data, 26, "BMP")
    width, height = struct.unpack("<ii", data[18:26])
    return "BMP", width, abs(height)  # a negative height stores the rows top-down


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8 (BigTIFF)


def _tiff(data: bytes) -> tuple[str, int, int]:
    _need(data, 8, "TIFF")
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    if big:
        _need(data, 16, "BigTIFF")
        offset = struct.unpack(order + "Q", data[8:16])[0]
        count_format, entry_size, value_at, count_size = "Q", 20, 12, 8
    else:
        offset = struct.unpack(order + "I", data[4:8])[0]
        count_format, entry_size, value_at, count_size = "H", 12, 8, 2
    _need(data, offset + count_size, "TIFF")
    entries = struct.unpack(order + count_format, data[offset:offset + count_size])[0]
    sides: dict[int, int] = {}  # a tag listed twice: the larger value is the one checked against the budget
    for i in range(entries):
        start = offset + count_size + i * entry_size
        _need(data, start + entry_size, "TIFF")
        tag, kind = struct.unpack(order + "HH", data[start:start + 4])
        if tag in (256, 257) and kind in _TIFF_TYPES:
            code, size = _TIFF_TYPES[kind]
            value = struct.unpack(order + code, data[start + value_at:start + value_at + size])[0]
            sides[tag] = max(sides.get(tag, 0), value)
    if len(sides) != 2:
        raise HeaderError("its first TIFF directory has no ImageWidth and ImageLength")
    return "TIFF", sides[256], sides[257]


def _webp(data: bytes) -> tuple[str, int, int]:
    _need(data, 30, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sides (2 bits of scaling above)
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("its WebP VP8 frame has no start code")
        width, height = struct.unpack("<HH", data[26:30])
        return "WebP", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: a signature byte, then 14-bit sides minus one
        if data[20] != 0x2F:
            raise HeaderError("its WebP VP8L stream has no signature")
        bits = int.from_bytes(data[21:25], "little")
        return "WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sides minus one
        return "WebP", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise HeaderError(f"its WebP file starts with an unknown chunk {chunk!r}")


def _gif(data: bytes) -> tuple[str, int, int]:
    _need(data, 10, "GIF")
    width, height = struct.unpack("<HH", data[6:10])
    return "GIF", width, height


def _pnm(data: bytes) -> tuple[str, int, int]:
    """P1-P6: whitespace-separated ASCII width and height after the magic, '#' comments allowed."""
    numbers: list[int] = []
    position = 2
    while len(numbers) < 2:
        while position < len(data) and data[position:position + 1].isspace():
            position += 1
        if position < len(data) and data[position] == ord("#"):
            end = data.find(b"\n", position)
            position = len(data) if end == -1 else end + 1
            continue
        start = position
        while position < len(data) and data[position:position + 1].isdigit():
            position += 1
        if start == position or position - start > 9:
            raise HeaderError("its PNM header has no width and height")
        numbers.append(int(data[start:position]))
    return "PNM", numbers[0], numbers[1]


def _is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _is_pnm(data: bytes) -> bool:
    return len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace()


_READERS = (
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"II*\x00", _tiff), (b"MM\x00*", _tiff), (b"II+\x00", _tiff), (b"MM\x00+", _tiff),
    (_is_webp, _webp),
    (b"GIF87a", _gif), (b"GIF89a", _gif),
    (_is_pnm, _pnm),
)
