"""Frame sources for `edgeclf camera`: webcams, video files, streams, image folders and the Pi camera.

Every source yields RGB uint8 frames. A live source (webcam, URL, Pi camera) is read by a capture
thread that keeps only the newest frame, so a slow model never builds a queue; a file or folder is
read one frame ahead of the model, so every frame is classified and decoding overlaps inference.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from edgeclf.runtime.folder import is_visible
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, load_image

PICAMERA_HINT = ("the Pi camera needs picamera2: on Raspberry Pi OS `sudo apt install python3-picamera2`, "
                 "then create the venv with `python3 -m venv --system-site-packages` so it can import it")


class SourceError(RuntimeError):
    """A source that cannot be opened or that failed while reading; the message names it."""


class Source(Protocol):
    name: str
    live: bool  # live sources drop stale frames; files and folders are read in order

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None when the source has ended."""

    def close(self) -> None: ...


def parse_resolution(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height)."""
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts) and all(int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise SourceError(f"--resolution must be WIDTHxHEIGHT in pixels; received {text!r}. Use e.g. --resolution 320x240.")


class OpenCVSource:
    """A V4L2 webcam index, a video file, or an RTSP/HTTP URL, through cv2.VideoCapture.

    Args:
        resolution: (width, height) to ask a webcam for; it may pick its nearest mode, which
            `resolution` then reports.
    """

    def __init__(self, spec: str | int, resolution: tuple[int, int] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.name = str(spec)
        self.live = isinstance(spec, int) or "://" in str(spec)
        self._capture = cv2.VideoCapture(spec)
        if not self._capture.isOpened():
            hint = ("check the camera index (ls /dev/video*) and that no other program holds it"
                    if isinstance(spec, int) else "check the path or URL and that OpenCV was built with its codec")
            raise SourceError(f"cannot open video source {spec!r}: {hint}")
        if resolution is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
        self.resolution = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                           int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.resolution[0] * self.resolution[1] > max_pixels:  # the container's size, before a frame is decoded
            self._capture.release()
            raise SourceError(f"{spec}: frames of {self.resolution[0]}x{self.resolution[1]} pixels are over the pixel "
                              f"budget of {max_pixels / 1e6:g} MP (--max-pixels {max_pixels}); raise --max-pixels or "
                              "play a smaller video")

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok and frame is not None else None

    def close(self) -> None:
        self._capture.release()

    def frame_rate(self) -> float | None:
        """The video's own frames per second, when its container says (None for nonsense values)."""
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and 0 < fps <= MAX_FPS else None

    def rewind(self) -> None:
        """Back to the first frame, for --loop (reopened: seeking is unreliable for some containers)."""
        self._capture.release()
        self._capture = cv2.VideoCapture(self.name)


class FolderSource:
    """The images of a folder in name order (hidden files skipped, unreadable or over-budget ones skipped).

    Args:
        at_least: (height, width) the frames are resized to when nothing is cropped: a large JPEG is then
            decoded at a reduced scale, exactly as `edgeclf.runtime.preprocess` does for training and eval.
    """

    def __init__(self, folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS,
                 at_least: tuple[int, int] | None = None) -> None:
        self.name, self.live = str(folder), False
        self._max_pixels, self._at_least = max_pixels, at_least
        self.skipped: list[dict] = []  # {"path", "reason"} of the files that could not be played
        self._paths = [p for p in sorted(folder.iterdir())
                       if p.is_file() and is_visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not self._paths:
            raise SourceError(f"{folder}: no images to play ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
        self._next = 0

    def read(self) -> np.ndarray | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            try:
                return load_image(path, self._max_pixels, self._at_least)
            except ImageError as exc:
                self.skipped.append({"path": str(path), "reason": str(exc).removeprefix(f"{path}: ")})
                continue
        return None

    def close(self) -> None:
        pass

    def rewind(self) -> None:
        self._next = 0


@dataclass(frozen=True)
class Captured:
    """A frame a source delivers twice: `view` for the outputs (web view, recording) and `model` already at the
    model's input size and region (scaled and cropped by the camera's ISP), which needs no crop or resize."""

    view: np.ndarray
    model: np.ndarray


def lores_size(model_size: tuple[int, int], main: tuple[int, int]) -> tuple[int, int]:
    """picamera2's lores (width, height) for a model input of (height, width): even sides (YUV420 halves them),
    no larger than the main stream, as picamera2 requires."""
    height, width = model_size
    even = [min(side + side % 2, limit - limit % 2) for side, limit in ((width, main[0]), (height, main[1]))]
    return even[0], even[1]


def _isp_is_pisp() -> bool:
    """True on the Pi 5's ISP (PiSP), whose lores stream may be RGB; the Pi 4's (VC4) gives YUV420 only."""
    try:
        from picamera2.platform import Platform, get_platform
    except ImportError:
        return False
    return get_platform() == Platform.PISP


class PicameraSource:
    """The Raspberry Pi camera through picamera2, imported only when asked for.

    With `model_size`, the ISP delivers the frames at the model's size: a `lores` stream at the model's
    input (YUV420, converted here; RGB888 on a Pi 5), with `roi` or `center_crop` applied by the ISP as its
    ScalerCrop (to both streams), and the `main` stream for the outputs that show frames (read only while
    `keep_main` is true; the loop sets it from its sinks). No CPU resize is left for the model.

    Args:
        size: (width, height) of the main stream.
        model_size: (height, width) of the model input, or None for main only (the CPU resizes).
        roi: x, y, w, h in main-stream pixels.
    """

    def __init__(self, size: tuple[int, int] = (640, 480), model_size: tuple[int, int] | None = None,
                 roi: tuple[int, int, int, int] | None = None, center_crop: bool = False) -> None:
        self.resolution = size
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(f"--source picamera: {PICAMERA_HINT}.") from exc
        if roi is not None and (roi[0] + roi[2] > size[0] or roi[1] + roi[3] > size[1]):
            raise SourceError(f"--roi {','.join(map(str, roi))} lies outside the {size[0]}x{size[1]} frame of the Pi "
                              "camera. Choose a region inside it (or a larger --resolution).")
        self.name, self.live = "picamera", True
        self.keep_main = True
        self.lores = lores_size(model_size, size) if model_size else None
        self.lores_format = ("RGB888" if _isp_is_pisp() else "YUV420") if self.lores else None
        self._camera = Picamera2()
        streams: dict[str, Any] = {"main": {"format": "RGB888", "size": size}}
        if self.lores:
            streams["lores"] = {"format": self.lores_format, "size": self.lores}
        self._camera.configure(self._camera.create_video_configuration(**streams))
        self._camera.start()
        self.scaler_crop = None
        region = roi if roi is not None else centred_square(size) if center_crop else None
        if self.lores and region is not None:
            self.scaler_crop = _sensor_rectangle(region, size, self._camera.capture_metadata()["ScalerCrop"])
            self._camera.set_controls({"ScalerCrop": self.scaler_crop})

    def read(self) -> np.ndarray | Captured | None:
        # picamera2's "RGB888" is stored B, G, R in memory (its naming follows DRM fourcc), so swap.
        if self.lores is None:
            return cv2.cvtColor(self._camera.capture_array("main"), cv2.COLOR_BGR2RGB)
        if self.keep_main:
            (main, lores), _ = self._camera.capture_arrays(["main", "lores"])
            small = self._lores_rgb(lores)
            return Captured(cv2.cvtColor(main, cv2.COLOR_BGR2RGB), small)
        small = self._lores_rgb(self._camera.capture_array("lores"))
        return Captured(small, small)

    def _lores_rgb(self, array: np.ndarray) -> np.ndarray:
        """The lores array as RGB at the lores size: YUV420 comes as (h * 3/2, stride) rows, padding included."""
        width, height = self.lores
        if self.lores_format == "YUV420":
            return np.ascontiguousarray(cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)[:height, :width])
        return np.ascontiguousarray(cv2.cvtColor(array[:, :, :3], cv2.COLOR_BGR2RGB)[:height, :width])

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()


def centred_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred square of a (width, height) frame as x, y, w, h: what --center-crop classifies."""
    side = min(size)
    return (size[0] - side) // 2, (size[1] - side) // 2, side, side


def _sensor_rectangle(region: tuple[int, int, int, int], main: tuple[int, int],
                      shown: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """`region` (x, y, w, h in main-stream pixels) as a ScalerCrop rectangle in sensor pixels, given the
    ScalerCrop the main stream shows now (picamera2 reports it in each frame's metadata)."""
    x0, y0, width, height = shown
    sx, sy = width / main[0], height / main[1]
    x, y, w, h = region
    return int(x0 + x * sx), int(y0 + y * sy), max(1, round(w * sx)), max(1, round(h * sy))


def smallest_mode(modes: list[tuple[int, int]], model_size: tuple[int, int]) -> tuple[int, int] | None:
    """The smallest (width, height) of `modes` that covers a model input of (height, width) in both sides; the
    largest mode when none covers it; None without modes."""
    if not modes:
        return None
    height, width = model_size
    covering = [m for m in modes if m[0] >= width and m[1] >= height]
    return min(covering, key=lambda m: (m[0] * m[1], m)) if covering else max(modes, key=lambda m: (m[0] * m[1], m))


_VIDIOC_ENUM_FMT = 0xC0405602  # _IOWR('V', 2, struct v4l2_fmtdesc), 64 bytes
_VIDIOC_ENUM_FRAMESIZES = 0xC02C564A  # _IOWR('V', 74, struct v4l2_frmsizeenum), 44 bytes
_V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
_V4L2_FRMSIZE_TYPE_DISCRETE = 1


def v4l2_modes(index: int) -> list[tuple[int, int]]:
    """The discrete frame sizes /dev/video<index> offers in any of its capture formats (V4L2's ENUM_FMT and
    ENUM_FRAMESIZES ioctls); [] where they cannot be asked (not Linux, no such device, a stepwise device)."""
    import fcntl
    import struct

    sizes: set[tuple[int, int]] = set()
    try:
        with open(f"/dev/video{index}", "rb", buffering=0) as device:
            for format_index in range(64):
                fmtdesc = bytearray(struct.pack("3I32sI4I", format_index, _V4L2_BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0,
                                                0, 0, 0, 0))
                try:
                    fcntl.ioctl(device, _VIDIOC_ENUM_FMT, fmtdesc)
                except OSError:
                    break
                pixel_format = struct.unpack_from("I", fmtdesc, 44)[0]
                for size_index in range(256):
                    frmsize = bytearray(struct.pack("3I6I2I", size_index, pixel_format, 0, *([0] * 8)))
                    try:
                        fcntl.ioctl(device, _VIDIOC_ENUM_FRAMESIZES, frmsize)
                    except OSError:
                        break
                    kind, width, height = struct.unpack_from("3I", frmsize, 8)
                    if kind != _V4L2_FRMSIZE_TYPE_DISCRETE:
                        break
                    sizes.add((width, height))
    except OSError:
        return []
    return sorted(sizes)


def open_source(spec: str, resolution: tuple[int, int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                at_least: tuple[int, int] | None = None, model_size: tuple[int, int] | None = None,
                roi: tuple[int, int, int, int] | None = None, center_crop: bool = False) -> Source:
    """`0`/`1` (webcam index), `picamera`, a video file, a URL, or a folder of images.

    Args:
        resolution: (width, height) to capture at, for a webcam or the Pi camera. Capturing near
            the model's input size saves decoding and resizing every frame, which is what bounds
            a small model's frame rate.
        max_pixels: the pixel budget of one image or video frame, checked from the header before decoding.
        at_least: for a folder, the size frames are resized to when nothing is cropped (see FolderSource);
            for a webcam without `resolution`, the size its smallest covering mode is chosen for.
        model_size, roi, center_crop: for the Pi camera, the model input (height, width) its lores stream
            delivers, and the region its ISP crops (see PicameraSource).
    """
    if spec.isdigit():
        if resolution is None and at_least is not None:  # the webcam's smallest mode that covers the model input
            resolution = smallest_mode(v4l2_modes(int(spec)), at_least)
        return OpenCVSource(int(spec), resolution)
    if spec == "picamera":
        return PicameraSource(resolution or (640, 480), model_size, roi, center_crop)
    if resolution is not None:
        raise SourceError(f"--resolution sets what a webcam or the Pi camera captures; --source {spec} plays at "
                          "its own size. Drop --resolution (use --roi to classify part of the frame).")
    if "://" in spec:
        return OpenCVSource(spec, max_pixels=max_pixels)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, max_pixels, at_least)
    if not path.is_file():
        raise SourceError(f"--source {spec}: no such file or folder. Use a webcam index (0), picamera, "
                          "a video file, an rtsp:// or http:// URL, or a folder of images.")
    return OpenCVSource(spec, max_pixels=max_pixels)


MAX_FPS = 1000.0
DEFAULT_FOLDER_FPS = 10.0


class PlayedFile:
    """A video file or an image folder played as a camera would give it: `fps` frames a second on the clock
    (live: the capture thread keeps the newest frame and counts the ones the model missed) and, with
    `loop`, from the start again when it ends.

    A frame is handed out when it is due (start + index / fps); a decoder that falls behind hands the
    late frames out at once, so the clip's clock is kept and the model sees what a camera would show.
    """

    def __init__(self, source: Source, fps: float | None, loop: bool = False) -> None:
        if fps is not None and not 0 < fps <= MAX_FPS:
            raise SourceError(f"--fps must be in (0, {MAX_FPS:g}]; received {fps}. Use e.g. --fps 10.")
        self.source, self.fps, self.loop = source, fps, loop
        self.name = source.name
        self.live = fps is not None
        self.ended = False  # tells the capture thread that an empty read is the end, not a camera glitch
        self.loops = 0
        self.waited = 0.0  # seconds the last read waited for its frame's time (not capture work)
        self._start: float | None = None
        self._count = 0

    def read(self) -> np.ndarray | None:
        image = self.source.read()
        if image is None and self.loop:
            self.source.rewind()
            self.loops += 1
            image = self.source.read()
        if image is None:
            self.ended = True
            return None
        if self.fps is not None:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + self._count / self.fps
            self.waited = max(0.0, due - now)
            if self.waited:
                time.sleep(self.waited)
            self._count += 1
        return image

    def close(self) -> None:
        self.source.close()


def play_file(source: Source, realtime: bool, loop: bool = False, fps: float | None = None) -> Source:
    """`source` paced at its own frame rate (`realtime`) and/or repeated (`loop`); live sources as they are.

    Args:
        fps: frames per second for an image folder (default DEFAULT_FOLDER_FPS), or instead of a video's own.

    Raises:
        SourceError: --loop on a live source, or a bad --fps.
    """
    if source.live:
        if loop:
            raise SourceError(f"--loop repeats a video file or an image folder; --source {source.name} is live. "
                              "Drop --loop.")
        return source
    if not realtime and not loop:
        return source
    rate = None
    if realtime:
        own = source.frame_rate() if hasattr(source, "frame_rate") else None
        rate = fps if fps is not None else own or DEFAULT_FOLDER_FPS
    return PlayedFile(source, rate, loop)


@dataclass
class Frame:
    index: int  # position in the source, counting dropped frames
    image: np.ndarray
    captured: float  # time.time() when read
    capture_ms: float
    tensor: Any = None  # prepare(image), computed in the capture thread
    preprocess_ms: float = 0.0
    error: Exception | None = None  # what prepare() raised, re-raised by the consumer


MAX_READ_FAILURES = 25  # consecutive failed reads of a live source (about 9 s of retrying) that end the run
# Frames of a file source decoded ahead of the model: a moment's hiccup of the model's thread (the OS running
# something else) no longer stops the decoder, whose pace is what bounds a small model's frame rate.
FILE_FRAMES_AHEAD = 3
FILE_AHEAD_BYTES = 8 << 20  # ... for frames up to this size; a larger one (a full-size photo) waits alone


class FrameGrabber:
    """Reads a source in its own thread; hands the model the newest frame (live) or the next one (files).

    Args:
        prepare: frame -> model input, run in the capture thread so that preprocessing the next
            frame overlaps inference on the current one (the capture thread mostly waits in native
            code, which releases the GIL).
        every: prepare only every Nth frame (the others are skipped by the consumer).
    """

    def __init__(self, source: Source, prepare: Callable[[np.ndarray], Any] | None = None, every: int = 1,
                 prepare_small: Callable[[np.ndarray], Any] | None = None) -> None:
        self.source = source
        self._prepare, self._every = prepare, every
        self._prepare_small = prepare_small or prepare  # for a `Captured` frame's model-sized, cropped image
        self.read = self.dropped = self.read_errors = 0
        self.error: str | None = None
        self._frames: deque[Frame] = deque()  # live: the newest frame only; files: up to FILE_FRAMES_AHEAD
        self._ended = False
        self._stop = threading.Event()
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="edgeclf-capture", daemon=True)
        self._thread.start()

    def _read(self) -> np.ndarray | None:
        """The next image; for a live source, failed reads (None or an exception) are retried with a growing
        pause, up to MAX_READ_FAILURES in a row, so a camera glitch does not end a run of weeks."""
        failures = 0
        while not self._stop.is_set():
            try:
                image = self.source.read()
                problem = None if image is not None else "the source returned no frame"
            except Exception as exc:  # noqa: BLE001 - cameras and decoders raise anything
                if not self.source.live:
                    raise
                image, problem = None, f"{type(exc).__name__}: {exc}"
            if image is not None or not self.source.live or getattr(self.source, "ended", False):
                return image
            failures += 1
            self.read_errors += 1
            if failures >= MAX_READ_FAILURES:
                raise SourceError(f"{problem} ({failures} reads in a row failed)")
            self._stop.wait(min(0.02 * failures, 0.5))
        return None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                image = self._read()
                # A file played in real time waits for each frame's time: that is the clock, not capture work.
                capture_ms = (time.perf_counter() - t0 - getattr(self.source, "waited", 0.0)) * 1000.0
                if image is None:
                    break
                small = None
                if isinstance(image, Captured):
                    image, small = image.view, image.model
                frame = Frame(self.read, image, time.time(), capture_ms)
                if self._prepare is not None and frame.index % self._every == 0:
                    t0 = time.perf_counter()
                    try:
                        frame.tensor = self._prepare(image) if small is None else self._prepare_small(small)
                    except Exception as exc:  # noqa: BLE001 - handed to the consumer, which decides
                        frame.error = exc
                    frame.preprocess_ms = (time.perf_counter() - t0) * 1000.0
                with self._condition:
                    if not self.source.live:  # files: wait while the model has enough frames ahead
                        ahead = FILE_FRAMES_AHEAD if frame.image.nbytes <= FILE_AHEAD_BYTES else 1
                        while len(self._frames) >= ahead and not self._stop.is_set():
                            self._condition.wait(0.1)
                    elif self._frames:
                        self.dropped += len(self._frames)  # a live frame the model never saw
                        self._frames.clear()
                    self._frames.append(frame)
                    self.read += 1
                    self._condition.notify_all()
        except SourceError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of a camera or decoder ends the stream cleanly
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def next(self, timeout: float = 10.0) -> Frame | None:
        """The frame to classify now; None when the source has ended (or stalled for `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._frames and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.error = self.error or f"no frame for {timeout:.0f} s"
                    return None
                self._condition.wait(remaining)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._condition.notify_all()
            return frame

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)
        self.source.close()
