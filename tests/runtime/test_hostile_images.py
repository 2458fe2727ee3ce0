"""Hostile images: small files whose header claims a huge size, refused from the header before decoding.

Each file is crafted here (a few hundred bytes to ~480 KB, never the decoded pixels) and claims 0.27 to 0.9
gigapixels: decoded, each would take 0.8 to 2.7 GB. Every command that decodes images (data, classify,
eval, camera; build in tests/toolchain/test_hostile_build.py) runs in a fresh process whose peak RSS over
its own baseline must stay under RSS_BOUND_MB. benchmarks/reliability.py fuzzes with the same builders.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.imageheader import HeaderError, read_header
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageError, decode_image, preprocess

RSS_BOUND_MB = 400  # peak RSS over the process's baseline; any hostile file decoded would add >= 800 MB
SIDE = 30_000  # 900 MP claimed


def _encoded(ext: str, image: np.ndarray | None = None, params: list | None = None) -> bytes:
    image = np.full((16, 16, 3), (30, 120, 200), np.uint8) if image is None else image
    ok, data = cv2.imencode(ext, image, params or [])
    assert ok
    return data.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of side x side zeros (~480 KB for 30,000): OpenCV would expand it to 2.7 GB."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(1)  # fast; level 9 is 110 KB but takes seconds
    stream = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b"")


def exif_segment(orientation: int = 1) -> bytes:
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4
    payload = b"Exif\x00\x00" + tiff + b"\x00" * 2000  # a long APP1, as cameras write, before the frame header
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_bomb(side: int = SIDE, progressive: bool = False) -> bytes:
    """A real 16x16 JPEG (behind an EXIF APP1) whose start-of-frame marker claims side x side."""
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    data = bytearray(_encoded(".jpg", params=params))
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    return bytes(data[:2]) + exif_segment() + bytes(data[2:])


def bmp_bomb(side: int = SIDE) -> bytes:
    """A valid 8-bit RLE BMP of side x side: its whole pixel data is one end-of-bitmap code."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    pixels = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def tiff_bomb(side: int = SIDE, order: str = "<", big: bool = False) -> bytes:
    """An 8-bit grayscale TIFF (little- or big-endian, classic or BigTIFF) claiming side x side, one short strip."""
    strip = b"\x00" * 64
    tags = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 4, side), (279, 4, len(strip))]
    magic = (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    if big:
        header = magic + struct.pack(order + "HHQ", 8, 0, 16)
        entry, count, tail, value_size = order + "HHQ", order + "Q", order + "Q", 8
    else:
        header = magic + struct.pack(order + "I", 8)
        entry, count, tail, value_size = order + "HHI", order + "H", order + "I", 4
    ifd_size = struct.calcsize(count) + len(tags) * (struct.calcsize(entry) + value_size) + struct.calcsize(tail)
    strip_at = len(header) + ifd_size
    ifd = struct.pack(count, len(tags))
    for tag, kind, value in tags:
        value = strip_at if tag == 273 else value
        code = {3: "H", 4: "I"}[kind]
        packed = struct.pack(order + code, value).ljust(value_size, b"\x00")
        ifd += struct.pack(entry, tag, kind, 1) + packed
    return header + ifd + struct.pack(tail, 0) + strip


def webp_bomb(kind: str) -> bytes:
    """A real 16x16 WebP with its size patched: VP8 (lossy) and VP8L (lossless) to their 14-bit maximum
    (16,383 / 16,384 a side), VP8X's canvas to 30,000 x 30,000."""
    lossy = _encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 80])
    if kind == "VP8X":
        canvas = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (SIDE - 1).to_bytes(3, "little") * 2
        body = b"WEBP" + canvas + lossy[12:]
        return b"RIFF" + struct.pack("<I", len(body)) + body
    data = bytearray(_encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 101]) if kind == "VP8L" else lossy)
    assert data[12:16] == kind.ljust(4).encode()
    if kind == "VP8L":
        bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
        data[21:25] = (bits | 0x3FFF | (0x3FFF << 14)).to_bytes(4, "little")
    else:
        data[26:30] = struct.pack("<HH", 0x3FFF, 0x3FFF)
    return bytes(data)


def gif_bomb(side: int = SIDE) -> bytes:
    screen = struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b"\x3b"


def pnm_bomb(side: int = SIDE) -> bytes:
    return f"P5\n# a comment\n{side} {side}\n255\n".encode() + b"\x00" * 1024


# name -> builder of a file whose header claims far more than the default budget.
HOSTILE = {
    "bomb.png": png_bomb,
    "bomb.jpg": jpeg_bomb,
    "bomb_progressive.jpg": lambda: jpeg_bomb(progressive=True),
    "bomb.bmp": bmp_bomb,
    "bomb_le.tif": lambda: tiff_bomb(order="<"),
    "bomb_be.tif": lambda: tiff_bomb(order=">"),
    "bomb_bigtiff.tif": lambda: tiff_bomb(order="<", big=True),
    "bomb_vp8.webp": lambda: webp_bomb("VP8"),
    "bomb_vp8l.webp": lambda: webp_bomb("VP8L"),
    "bomb_vp8x.webp": lambda: webp_bomb("VP8X"),
    "bomb_pgm.png": pnm_bomb,  # misnamed files: the header decides, not the extension
}
REFUSED_BY_FORMAT = {"bomb_gif.jpg": gif_bomb}  # edgeclf does not read GIF at all; its header is still read


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, make in {**HOSTILE, **REFUSED_BY_FORMAT}.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    return paths


# --- the header readers -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_header_is_read_without_decoding(name, hostile_files):
    header = read_header(hostile_files[name].read_bytes())
    assert header is not None and header.pixels > 10 * DEFAULT_MAX_PIXELS // 2
    assert hostile_files[name].stat().st_size < 600_000  # the file is small; the claim is not


@pytest.mark.parametrize("ext, params", [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                                         (".bmp", []), (".tif", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
                                         (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".pgm", [])])
def test_header_size_matches_what_opencv_writes(ext, params):
    image = np.zeros((37, 53, 3 if ext != ".pgm" else 1), np.uint8)
    header = read_header(_encoded(ext, image if ext != ".pgm" else image[..., 0], params))
    assert (header.width, header.height) == (53, 37)


def test_both_tiff_byte_orders_and_bigtiff_are_read():
    for order in "<>":
        for big in (False, True):
            header = read_header(tiff_bomb(1234, order, big))
            assert (header.format, header.width, header.height) == ("TIFF", 1234, 1234)


def test_jpeg_header_is_found_past_exif():
    assert read_header(jpeg_bomb(5000)).width == 5000
    assert read_header(_encoded(".jpg")[:2] + exif_segment() + _encoded(".jpg")[2:]).width == 16


@pytest.mark.parametrize("data, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "cut short"),
    (b"\xff\xd8\xff\xe1\x00\x01", "length 1"),
    (b"\xff\xd8\xff\xda\x00\x08", "before a frame header"),
    (b"BM" + b"\x00" * 12 + struct.pack("<I", 5), "info header has size 5"),
    (b"II*\x00" + struct.pack("<I", 10_000), "cut short"),
    (b"RIFF\x00\x00\x00\x00WEBPABCD" + b"\x00" * 20, "unknown chunk"),
    (tiff_bomb(0), "size of 0x0"),
])
def test_a_damaged_header_is_named(data, problem):
    with pytest.raises(HeaderError, match=problem):
        read_header(data)
    with pytest.raises(ImageError, match="x: (not a readable image|truncated JPEG)"):
        decode_image(data, "x")


# --- the budget in decode ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_file_is_refused_naming_size_and_budget(name, hostile_files):
    header = read_header(hostile_files[name].read_bytes())
    with pytest.raises(ImageError, match=rf"{name}: {header.width}x{header.height} pixels .* over the pixel budget "
                                         rf"of 50 MP \(--max-pixels 50000000\)"):
        preprocess(hostile_files[name], 32)


def test_gif_is_refused_as_a_format(hostile_files):
    with pytest.raises(ImageError, match="a GIF image, a format edgeclf does not read"):
        preprocess(hostile_files["bomb_gif.jpg"], 32)


def test_budget_is_settable_and_a_normal_image_within_it_decodes():
    data = _encoded(".png", np.zeros((40, 50, 3), np.uint8))
    assert decode_image(data, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(ImageError, match=r"x.png: 50x40 pixels \(0.0 MP\) is over the pixel budget of 0.001999 MP"):
        decode_image(data, "x.png", max_pixels=1999)


def test_a_file_larger_than_any_image_in_budget_is_not_read(tmp_path):
    path = tmp_path / "huge.bmp"
    path.write_bytes(bmp_bomb(10)[:100] + b"\x00" * 3_000_000)
    with pytest.raises(ImageError, match=r"huge.bmp: 3 MiB is larger than any image within the pixel budget"):
        preprocess(path, 8, max_pixels=10_000)


def test_an_unknown_format_is_decoded_only_when_small():
    with pytest.raises(ImageError, match="not a readable image .OpenCV could not decode it."):
        decode_image(b"\x01" * 1000, "small.png")
    with pytest.raises(ImageError, match=r"no PNG, JPEG, BMP, TIFF or WebP header .* 2.0 MiB is too large"):
        decode_image(b"\x01" * (2 << 20), "large.png")


def test_header_that_disagrees_with_the_pixels_is_refused():
    """A TIFF whose first directory lists ImageWidth twice (6, then 8): the budget is checked against the larger,
    libtiff decodes the first; a size the header did not state is refused instead of trusted."""
    lying = _tiff_with_two_widths(6, 8)
    assert (read_header(lying).width, read_header(lying).height) == (8, 6)
    with pytest.raises(ImageError, match=r"lying.tif: not a readable image \(decoded 6x6 pixels, but its TIFF header "
                                         r"says 8x6: a damaged or forged file\)"):
        decode_image(lying, "lying.tif")
    assert decode_image(_tiff_with_two_widths(8, 6)).shape == (8, 8, 3)  # the larger first: what it states


def _tiff_with_two_widths(first: int, second: int) -> bytes:
    data = bytearray(tiff_bomb(first))
    count = struct.unpack("<H", data[8:10])[0]
    entries = [bytes(data[10 + 12 * i:22 + 12 * i]) for i in range(count)]
    entries.insert(1, struct.pack("<HHII", 256, 4, 1, second))
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    strip_at = 8 + len(ifd)
    entries = [e if struct.unpack("<H", e[:2])[0] != 273 else struct.pack("<HHII", 273, 4, 1, strip_at) for e in entries]
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return bytes(data[:8]) + ifd + b"\x00" * 64


# --- large JPEGs decoded at a reduced scale ----------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _photo_like(height: int, width: int) -> np.ndarray:
    """Smooth gradients with texture: a stand-in photo (tests/runtime ships no photos)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.uniform(0, 255, (height // 16, width // 16, 3)).astype(np.float32), (width, height))
    image = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=2) * 0.5 + texture * 0.5
    return image.astype(np.uint8)


@pytest.mark.parametrize("at_least, shape", [((32, 32), (200, 250)), ((224, 224), (400, 500)), ((100, 300), (400, 500)),
                                             ((800, 800), (800, 1000)), ((801, 801), (1600, 2000)), (None, (1600, 2000))])
def test_large_jpeg_decodes_at_the_largest_reduction_that_keeps_the_target(at_least, shape):
    jpeg = _encoded(".jpg", _photo_like(1600, 2000))
    assert decode_image(jpeg, at_least=at_least).shape[:2] == shape
    assert decode_image(_encoded(".png", _photo_like(1600, 2000)), at_least=(32, 32)).shape[:2] == (1600, 2000)


def test_reduced_decode_gives_nearly_the_tensor_of_a_full_decode(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encoded(".jpg", _photo_like(1600, 2000), [cv2.IMWRITE_JPEG_QUALITY, 90]))
    from edgeclf.runtime.preprocess import load_image, resize

    full = resize(load_image(path), 96).astype(np.int16)
    reduced = preprocess(path, 96).astype(np.int16)  # decoded at 1/8: 200 x 250
    assert np.abs(full - reduced).mean() < 2.0
    from edgeclf.runtime.folder import load

    assert np.array_equal(load([(path, 0)], 96).images[0], preprocess(path, 96))  # eval and calibration: the same


def test_reduced_decode_applies_exif_orientation():
    wide = np.zeros((800, 1600, 3), np.uint8)
    wide[:, :800] = 255  # left half white
    jpeg = _encoded(".jpg", wide)
    rotated = jpeg[:2] + exif_segment(6) + jpeg[2:]  # 6: rotate 90 degrees clockwise
    image = decode_image(rotated, at_least=(64, 64))
    assert image.shape[:2] == (200, 100)  # 1/8 of 1600 x 800, turned upright
    assert image[:100].mean() > 200 and image[100:].mean() < 50  # the white half is now on top


# --- every command, in a fresh process, with its peak RSS --------------------------------------------------------

# Runs each `edgeclf ARGS...` of a JSON list in turn in this process, after importing PRELOAD (the modules the
# commands need anyway), and writes {"baseline_mb", "runs": [{"code", "peak_mb"}, ...]} to OUT: VmRSS once
# imported, VmHWM after each run (ru_maxrss where there is no /proc). Each run's stderr ends with a marker line.
MEASURE = r"""
import json, resource, sys

def mb(field):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

out, preload, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for name in filter(None, preload.split(",")):
    __import__(name)
baseline = mb("VmRSS")
from edgeclf.cli import main
runs = []
for args in commands:
    sys.argv = ["edgeclf", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    print("--- end of run ---", file=sys.stderr, flush=True)
    runs.append({"code": code, "peak_mb": mb("VmHWM")})
with open(out, "w") as handle:
    json.dump({"baseline_mb": baseline, "runs": runs}, handle)
"""
RUNTIME_PRELOAD = "edgeclf.cli,edgeclf.runtime.model,edgeclf.runtime.sources,edgeclf.toolchain.survey"


def run_measured_many(commands: list[list], tmp_path: Path, preload: str = RUNTIME_PRELOAD,
                      env: dict | None = None) -> tuple[list[str], list[dict]]:
    """Several `edgeclf ARGS` in turn in one fresh interpreter: (each run's stderr, each run's
    {"code", "baseline_mb", "peak_mb"}); a run's peak is the process's so far, so a bound on it holds for the
    runs before it too."""
    out = tmp_path / f"rss-{len(list(tmp_path.glob('rss-*')))}.json"
    done = subprocess.run([sys.executable, "-c", MEASURE, str(out), preload, json.dumps([list(map(str, c)) for c in commands])],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert out.exists(), done.stderr[-2000:]
    measured = json.loads(out.read_text())
    stderr = done.stderr.split("--- end of run ---\n")
    return stderr, [{**run, "baseline_mb": measured["baseline_mb"], "stdout": done.stdout} for run in measured["runs"]]


def run_measured(args: list, tmp_path: Path, preload: str = RUNTIME_PRELOAD,
                 env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """`edgeclf ARGS` in a fresh interpreter: (the finished process, {"code", "baseline_mb", "peak_mb"})."""
    stderr, runs = run_measured_many([args], tmp_path, preload, env)
    return subprocess.CompletedProcess(args, runs[0]["code"], runs[0]["stdout"], stderr[0]), runs[0]


def assert_bounded(measured: dict) -> None:
    grown = measured["peak_mb"] - measured["baseline_mb"]
    assert grown < RSS_BOUND_MB, f"peak RSS {measured['peak_mb']:.0f} MB is {grown:.0f} MB over the baseline"


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory, hostile_files, digits_val) -> Path:
    """Two classes of real digits, with every hostile file in class 0."""
    root = tmp_path_factory.mktemp("folder")
    for label in ("0", "1"):
        (root / label).mkdir()
        for image in sorted((digits_val / label).iterdir())[:3]:
            shutil.copy(image, root / label / image.name)
    for name, path in hostile_files.items():
        shutil.copy(path, root / "0" / name)
    return root


def _skipped_reasons(skipped: list[dict]) -> dict[str, str]:
    return {Path(item["path"]).name: item["reason"] for item in skipped}


def _assert_every_hostile_file_skipped(reasons: dict[str, str]) -> None:
    for name in HOSTILE:
        assert "over the pixel budget of 50 MP" in reasons[name], (name, reasons.get(name))
    assert "a GIF image" in reasons["bomb_gif.jpg"]
    assert len(reasons) == len(HOSTILE) + len(REFUSED_BY_FORMAT)


def test_data_lists_every_hostile_file_as_skipped_with_bounded_memory(hostile_folder, tmp_path):
    done, measured = run_measured(["data", hostile_folder, "--json"], tmp_path)
    assert measured["code"] == 0, done.stderr
    survey = json.loads(done.stdout)
    _assert_every_hostile_file_skipped(_skipped_reasons(survey["skipped"]))
    assert survey["counts"] == {"all": {"0": 3, "1": 3}}
    assert_bounded(measured)
    text = CliRunner().invoke(cli, ["data", str(hostile_folder), "--show", "50"])
    assert f"bomb.png: {SIDE}x{SIDE} pixels (900.0 MP) is over the pixel budget of 50 MP" in text.output


def test_classify_refuses_each_hostile_file_in_one_line_exit_2(hostile_files, tiny_int8, tmp_path):
    names = sorted(HOSTILE)
    stderr, runs = run_measured_many([["classify", tiny_int8, hostile_files[name]] for name in names], tmp_path,
                                     preload="edgeclf.cli,edgeclf.runtime.model")
    for name, errors, measured in zip(names, stderr, runs):
        header = read_header(hostile_files[name].read_bytes())
        assert measured["code"] == 2, (name, errors)
        assert errors.strip().splitlines() == [
            f"Error: {hostile_files[name]}: {header.width}x{header.height} pixels ({header.pixels / 1e6:.1f} MP) is "
            "over the pixel budget of 50 MP (--max-pixels 50000000); downscale the image or raise --max-pixels"]
    assert_bounded(runs[-1])  # the process's peak over all of them


def test_classify_budget_is_a_flag_and_a_bad_value_names_the_fix(digits_val, tiny_int8):
    image = str(next((digits_val / "3").iterdir()))
    ok = CliRunner().invoke(cli, ["classify", str(tiny_int8), image, "--max-pixels", "64", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)[0]["top_k"]
    small = CliRunner().invoke(cli, ["classify", str(tiny_int8), image, "--max-pixels", "63"])
    assert small.exit_code == 2
    assert "8x8 pixels (0.0 MP) is over the pixel budget of 6.3e-05 MP (--max-pixels 63)" in small.output
    bad = CliRunner().invoke(cli, ["classify", str(tiny_int8), image, "--max-pixels", "0"])
    assert bad.exit_code == 2
    assert "--max-pixels must be an integer in [1, 268435456] (pixels of one image); received 0. Use e.g. " \
           "--max-pixels 50000000." in bad.output


def test_eval_skips_and_lists_every_hostile_file_with_bounded_memory(hostile_folder, tiny_int8, tmp_path):
    done, measured = run_measured(["eval", tiny_int8, "--data", hostile_folder, "--json"], tmp_path)
    assert measured["code"] == 0, done.stderr
    result = json.loads(done.stdout)
    _assert_every_hostile_file_skipped(_skipped_reasons(result["skipped"]))
    assert sum(c["support"] for c in result["per_class"].values()) == 6
    assert_bounded(measured)


def test_camera_folder_source_plays_past_hostile_files_with_bounded_memory(hostile_files, digits_val, tiny_int8,
                                                                          tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(sorted((digits_val / "5").iterdir())[:2]):
        shutil.copy(image, folder / f"z{i}.png")  # after the bombs in name order
    for name, path in hostile_files.items():
        shutil.copy(path, folder / name)
    done, measured = run_measured(["camera", tiny_int8, "--source", folder, "--quiet"], tmp_path)
    assert measured["code"] == 0, done.stderr
    assert "2 frames classified" in done.stderr
    for name in HOSTILE:
        assert f"skipped {folder / name}: " in done.stderr and "over the pixel budget" in done.stderr
    assert_bounded(measured)


def test_compare_skips_and_lists_every_hostile_file(hostile_folder, tiny_float32, tiny_int8):
    result = CliRunner().invoke(cli, ["compare", str(tiny_float32), str(tiny_int8), "--data", str(hostile_folder),
                                      "--json"])
    assert result.exit_code == 0, result.output
    compared = json.loads(result.output)
    _assert_every_hostile_file_skipped(_skipped_reasons(compared["skipped"]))
    assert compared["images"] == 6


def test_data_reports_the_full_upright_size_of_a_jpeg_it_checked_at_reduced_scale(tmp_path):
    from edgeclf.toolchain.survey import survey

    wide = _encoded(".jpg", _photo_like(800, 1600))
    for name, data in (("plain", wide), ("turned", wide[:2] + exif_segment(6) + wide[2:])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "photo.jpg").write_bytes(data)
    assert dict(survey(tmp_path).common_sizes) == {"1600x800": 1, "800x1600": 1}


def test_opencv_own_limit_is_set_before_cv2_loads_as_a_second_line(tmp_path):
    """Past the header check (a budget passed to decode_image directly, above --max-pixels' own ceiling), OpenCV's
    own limit, which edgeclf sets to 2^28 before cv2 loads, still refuses a 289 MP image without decoding it."""
    path, normal = tmp_path / "bomb.png", tmp_path / "normal.png"
    path.write_bytes(png_bomb(17_000))
    normal.write_bytes(_encoded(".png", np.zeros((4000, 6000, 3), np.uint8)))  # 24 MP: under both limits
    code = ("import os, sys\nfrom edgeclf.runtime.preprocess import ImageError, load_image\n"
            "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
            "try:\n    load_image(sys.argv[1], max_pixels=10**9)\nexcept ImageError as exc:\n    print(exc)\n"
            "print(load_image(sys.argv[2]).shape)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    done = subprocess.run([sys.executable, "-c", code, str(path), str(normal)], capture_output=True, text=True,
                          env=env, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[0] == str(1 << 28), done.stderr
    assert lines[1].startswith(f"{path}: not a readable image (OpenCV refused it: ") and "CV_IO_MAX_IMAGE_PIXELS" in lines[1]
    assert lines[2] == "(4000, 6000, 3)"
