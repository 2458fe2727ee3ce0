"""`edgeclf collect`: build an image folder with the device's own camera, in a browser or a terminal.

Frames go to `photos/<label>/<time>.jpg`, each written beside its target under a hidden temporary name
and renamed over it (`runtime/files.py`), so a killed process never leaves a half file that
`edgeclf data` or `edgeclf build` would read. A tap (or a number key) writes one frame; a press held past
the page's tap time (HOLD_AFTER_MS in collect.html, 0.4 s) writes one more then and every 1/rate seconds
until it is released. The same page assigns the frames that
`edgeclf camera --review DIR` kept (`runtime/review.py`).
"""
from __future__ import annotations

import json
import os
import re
import select
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any, Callable

import cv2
import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import write_atomically
from edgeclf.runtime.folder import is_visible
from edgeclf.runtime.preprocess import IMAGE_EXTENSIONS, ImageError, load_image
from edgeclf.runtime.serve import BOUNDARY, DEFAULT_VIEWERS, BoundedHTTPServer, write_part
from edgeclf.runtime.serve import send_body as _send
from edgeclf.runtime.sources import FrameGrabber, Source, SourceError, open_source, play_file

PAGE_FILE = Path(__file__).with_name("collect.html")
MAX_RATE = 30.0  # frames per second a hold may record; more fills a folder with near-duplicates
HOLD_LEASE_S = 1.5  # a hold whose page stopped renewing it (a closed tab, a lost network) ends after this
PREVIEW_SIDE = 480  # the live view's longer side in pixels: enough to aim, cheap to encode and send
RECENT = 8  # thumbnails the page shows
UNDO_DEPTH = 50  # captures that undo can take back, newest first
RESERVED_LABELS = ("train", "val", "test")  # split folder names: a class named so would turn the folder into splits
# The page's server: a browser opens up to 6 connections to one host (the grid loads thumbnails in parallel),
# so 32 serve a few phones and laptops at once; a connection that stalls (or idles between keep-alive
# requests) for 30 s is closed.
MAX_CONNECTIONS = 32
REQUEST_TIMEOUT_S = 30.0


class CollectError(UserError, ValueError):
    """A collect option or request that cannot be used; the message names the value and the fix."""


def check_label(name: str) -> str:
    """A class name that is safe as a folder name and that `edgeclf data` reads as a class.

    Raises:
        CollectError: empty, hidden (leading dot), a path separator or control character, a split name
            (train, val, test), or longer than 64 characters.
    """
    text = name.strip()
    problem = None
    if not text:
        problem = "it is empty"
    elif text.startswith("."):
        problem = "a leading dot makes a hidden folder, which edgeclf data and build ignore"
    elif "/" in text or "\\" in text or os.sep in text:
        problem = "it holds a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in text):
        problem = "it holds a control character"
    elif text.lower() in RESERVED_LABELS:
        problem = f"{text} is a split folder name (train, val, test), which would turn the folder into splits"
    elif len(text) > 64:
        problem = "it is longer than 64 characters"
    if problem:
        raise CollectError(f"class name {name!r} cannot be used: {problem}. Use letters, digits, - or _, "
                           "e.g. --labels empty,cat,dog.")
    return text


def parse_labels(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    labels = [check_label(part) for part in text.split(",") if part.strip()]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise CollectError(f"--labels names {', '.join(duplicates)} twice; received {text!r}. Give each class once.")
    return tuple(labels)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height): the box a stored frame is shrunk to fit (aspect ratio kept)."""
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts) and all(int(p) >= 16 for p in parts):
        return int(parts[0]), int(parts[1])
    raise CollectError(f"--size must be WIDTHxHEIGHT in pixels, each at least 16; received {text!r}. "
                       "Use e.g. --size 320x240.")


@dataclass(frozen=True)
class CollectOptions:
    rate: float = 10.0  # frames per second while a button is held
    quality: int = 90  # JPEG quality of the stored frames
    size: tuple[int, int] | None = None  # shrink stored frames to fit this box (width, height)
    roi: tuple[int, int, int, int] | None = None  # store only this region: x, y, w, h

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MAX_RATE:
            raise CollectError(f"--rate must be in (0, {MAX_RATE:g}] frames per second; received {self.rate:g}. "
                               "Use e.g. --rate 10.")
        if not 1 <= self.quality <= 100:
            raise CollectError(f"--quality must be in [1, 100]; received {self.quality}. Use e.g. --quality 90.")
        if self.roi is not None and (self.roi[2] <= 0 or self.roi[3] <= 0 or min(self.roi[:2]) < 0):
            raise CollectError(f"--roi must be x,y,w,h with w, h > 0 and x, y >= 0; received {self.roi}. "
                               "Use e.g. --roi 160,80,320,320.")

    def stored(self, image: np.ndarray) -> np.ndarray:
        """The frame as it is written: the --roi region, shrunk to fit --size."""
        if self.roi is not None:
            x, y, w, h = self.roi
            if x + w > image.shape[1] or y + h > image.shape[0]:
                raise CollectError(f"--roi {x},{y},{w},{h} lies outside the {image.shape[1]}x{image.shape[0]} frame. "
                                   "Choose a region inside the frame.")
            image = image[y:y + h, x:x + w]
        if self.size is not None:
            scale = min(self.size[0] / image.shape[1], self.size[1] / image.shape[0])
            if scale < 1:
                width, height = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image


def encode_jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CollectError(f"OpenCV could not encode a {image_rgb.shape[1]}x{image_rgb.shape[0]} frame as JPEG.")
    return data.tobytes()


def thumbnail(image_rgb: np.ndarray, side: int = 96) -> bytes:
    scale = side / max(image_rgb.shape[:2])
    small = cv2.resize(image_rgb, (max(1, round(image_rgb.shape[1] * scale)), max(1, round(image_rgb.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image_rgb
    return encode_jpeg(small, 75)


def count_images(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if is_visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


class PhotoFolder:
    """photos/<label>/<time>.jpg: the classes in key order, counts, atomic writes, undo, recent thumbnails.

    The classes are --labels in their order, then the class folders already in `root` (sorted); keys 1-9
    pick them in that order. Temporary files a killed run left (hidden, so never read as images) are
    removed when the folder is opened.
    """

    def __init__(self, root: Path, labels: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise CollectError(f"--out {self.root}: exists and is not a folder. Pass a folder (it is created if missing).")
        existing = sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_visible(p)) if self.root.is_dir() else []
        self.labels: list[str] = list(labels) + [name for name in existing if name not in labels]
        self._lock = threading.Lock()
        self.counts = {label: count_images(self.root / label) for label in self.labels}
        self.stale_removed = sum(self._remove_stale(self.root / label) for label in self.labels)
        self.written = 0
        self._actions: deque[tuple[str, list[Path]]] = deque(maxlen=UNDO_DEPTH)
        self.recent: deque[dict] = deque(maxlen=RECENT)
        self._recent_id = 0
        self._last_micros = 0

    @staticmethod
    def _remove_stale(folder: Path) -> int:
        removed = 0
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def add_label(self, name: str) -> str:
        label = check_label(name)
        with self._lock:
            if label not in self.labels:  # its folder is made by the first frame: an empty one would stop a build
                self.labels.append(label)
                self.counts[label] = count_images(self.root / label)
        return label

    def label(self, name: str) -> str:
        if name not in self.counts:
            raise CollectError(f"no class {name!r}; the classes are {', '.join(self.labels) or 'none yet'}. "
                               "Add it first (the page's field, or --labels).")
        return name

    def begin(self, label: str) -> list[Path]:
        """Starts one capture (a tap or a hold) that undo takes back whole; returns its list of files."""
        files: list[Path] = []
        with self._lock:
            self._actions.append((self.label(label), files))
        return files

    def _name(self) -> str:
        """A file name from the local time to the microsecond, unique and ordered like the captures."""
        micros = max(time.time_ns() // 1000, self._last_micros + 1)
        self._last_micros = micros
        seconds, fraction = divmod(micros, 1_000_000)
        return datetime.fromtimestamp(seconds).strftime("%Y%m%d-%H%M%S") + f"-{fraction:06d}"

    def write(self, label: str, image_rgb: np.ndarray, quality: int, files: list[Path] | None = None) -> Path:
        """Encodes `image_rgb` and writes it atomically to root/<label>/<time>.jpg."""
        data = encode_jpeg(image_rgb, quality)
        with self._lock:
            path = self.root / self.label(label) / f"{self._name()}.jpg"
        write_atomically(path, data)
        self._added(label, path, thumbnail(image_rgb), files)
        return path

    def adopt(self, label: str, source: Path, name: str) -> Path:
        """Moves an existing image (a reviewed frame) into root/<label>/, atomically; returns its new path."""
        target = self.root / self.label(label) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}-{time.time_ns()}{target.suffix}")
        try:
            os.replace(source, target)  # same file system: the rename is atomic
        except OSError:
            write_atomically(target, source.read_bytes())
            source.unlink()
        try:  # through the one decode with the pixel budget: a review folder is anybody's files
            thumb = thumbnail(load_image(target))
        except ImageError:
            thumb = b""
        self._added(label, target, thumb, None)
        return target

    def _added(self, label: str, path: Path, thumb: bytes, files: list[Path] | None) -> None:
        with self._lock:
            self.counts[label] += 1
            self.written += 1
            if files is not None:
                files.append(path)
            self._recent_id += 1
            self.recent.append({"id": self._recent_id, "label": label, "file": path.name, "jpeg": thumb})

    def undo(self) -> dict:
        """Removes the files of the newest capture (a tap's frame, or every frame of a hold)."""
        with self._lock:
            while self._actions and not self._actions[-1][1]:
                self._actions.pop()  # a capture that wrote nothing (no frame arrived) is skipped
            if not self._actions:
                return {"label": None, "removed": 0}
            label, files = self._actions.pop()
            removed = {str(p) for p in files}
            for path in files:
                path.unlink(missing_ok=True)
            try:
                (self.root / label).rmdir()  # emptied by the undo: an empty class folder would stop a build
            except OSError:
                pass
            self.counts[label] -= len(files)
            self.written -= len(files)
            kept = [item for item in self.recent if str(self.root / item["label"] / item["file"]) not in removed]
            self.recent.clear()
            self.recent.extend(kept)
        return {"label": label, "removed": len(files)}

    def thumbnail(self, ident: int) -> bytes | None:
        with self._lock:
            return next((item["jpeg"] for item in self.recent if item["id"] == ident), None)

    def state(self) -> dict:
        with self._lock:
            return {"labels": list(self.labels), "counts": dict(self.counts), "written": self.written,
                    "recent": [{k: v for k, v in item.items() if k != "jpeg"} for item in self.recent],
                    "undo": bool(self._actions and any(files for _, files in self._actions))}


class _Hold:
    def __init__(self, label: str, files: list[Path]) -> None:
        self.label, self.files = label, files
        self.started = self.renewed = time.monotonic()
        self.stopped_at: float | None = None
        self.repeat_at: float | None = None  # when the page said the press is held, not a tap
        self.stop = threading.Event()
        self.wake = threading.Event()  # the page's repeat came, or the release
        self.thread: threading.Thread | None = None
        self.frames = 0
        self.skipped = 0  # ticks with no new frame from the source (a slow camera): nothing written twice


class Camera:
    """The source's newest frame, a writer thread, and press-and-hold recording at `options.rate`.

    A video file or image folder plays at its own frame rate in a loop (to try collect without a camera);
    a live source that ends or fails ends the run (`error`).
    """

    def __init__(self, spec: str, folder: PhotoFolder, options: CollectOptions,
                 resolution: tuple[int, int] | None = None) -> None:
        self.spec, self.folder, self.options, self._resolution = spec, folder, options, resolution
        source = self._open()
        self.name = source.name
        self._condition = threading.Condition()
        self._frame: tuple[int, np.ndarray] | None = None  # (serial, RGB frame as stored: roi applied)
        self._serial = 0
        self._preview: tuple[int, bytes] | None = None
        self._hold: _Hold | None = None
        self._last_hold: _Hold | None = None
        self._hold_lock = threading.Lock()
        self.error: str | None = None
        self.closed = threading.Event()
        self._writes: "list[tuple]" = []
        self._write_condition = threading.Condition()
        self._pending = 0
        self._reader = threading.Thread(target=self._read, args=(source,), name="edgeclf-collect-read", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="edgeclf-collect-write", daemon=True)
        self._reader.start()
        self._writer.start()

    def _open(self) -> Source:
        """The source; a video file or image folder at its own frame rate, again from the start when it ends."""
        try:
            return play_file(open_source(self.spec, self._resolution), realtime=True, loop=True)
        except SourceError as exc:
            raise CollectError(str(exc)) from exc

    def _read(self, source: Source) -> None:
        grabber = FrameGrabber(source)
        try:
            while not self.closed.is_set():
                frame = grabber.next()
                if frame is None:
                    self.error = f"{self.name}: {grabber.error or 'the source ended'}"
                    break
                try:
                    image = self.options.stored(frame.image)
                except CollectError as exc:
                    self.error = str(exc)
                    break
                with self._condition:
                    self._serial += 1
                    self._frame = (self._serial, image)
                    self._condition.notify_all()
        except Exception as exc:  # noqa: BLE001 - any failure of a camera or decoder ends the run with its reason
            self.error = f"{self.name}: {type(exc).__name__}: {exc}"
        finally:
            grabber.close()
            with self._condition:
                self._condition.notify_all()

    def latest(self, after: int = 0, timeout: float = 5.0) -> tuple[int, np.ndarray] | None:
        """The newest frame whose serial is above `after` (waiting up to `timeout`), else None."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while (self._frame is None or self._frame[0] <= after) and self.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    return None
                self._condition.wait(remaining)
            return self._frame if self._frame is not None and self._frame[0] > after else None

    def preview(self, after: int = 0) -> tuple[int, bytes] | None:
        """The newest frame as a small JPEG for the live view; encoded once per frame, shared by every viewer."""
        frame = self.latest(after, timeout=2.0)
        if frame is None:
            return None
        with self._condition:
            if self._preview is not None and self._preview[0] == frame[0]:
                return self._preview
        image = frame[1]
        scale = PREVIEW_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        preview = (frame[0], encode_jpeg(image, 70))
        with self._condition:
            self._preview = preview
        return preview

    # --- writing -------------------------------------------------------------------------------------
    def _enqueue(self, label: str, image: np.ndarray, files: list[Path]) -> None:
        with self._write_condition:
            self._writes.append((label, image, files))
            self._pending += 1
            self._write_condition.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._write_condition:
                while not self._writes and not self.closed.is_set():
                    self._write_condition.wait(0.5)
                if not self._writes:
                    return
                label, image, files = self._writes.pop(0)
            try:
                self.folder.write(label, image, self.options.quality, files)
            except (OSError, CollectError) as exc:
                self.error = f"cannot write into {self.folder.root / label}: {exc}"
            finally:
                with self._write_condition:
                    self._pending -= 1
                    self._write_condition.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued frame is on disk."""
        deadline = time.monotonic() + timeout
        with self._write_condition:
            while self._pending and time.monotonic() < deadline:
                self._write_condition.wait(0.1)

    # --- capturing -----------------------------------------------------------------------------------
    def snap(self, label: str) -> dict:
        """Exactly one frame into `label` (a key press in the terminal), however long writing takes."""
        self.folder.label(label)
        self.stop_hold()
        frame = self._frame_now()
        self._enqueue(label, frame[1], self.folder.begin(label))
        return {"label": label, "frames": 1}

    def _frame_now(self) -> tuple[int, np.ndarray]:
        frame = self.latest(timeout=5.0)
        if frame is None:
            raise CollectError(f"no frame from {self.name} yet{': ' + self.error if self.error else ''}; "
                               "check the source.")
        return frame

    def start_hold(self, label: str) -> dict:
        """Writes the newest frame now: a tap's frame. More come only after `repeat_hold`, until `stop_hold` (or
        the lease runs out)."""
        self.folder.label(label)
        self.stop_hold()
        frame = self._frame_now()
        hold = _Hold(label, self.folder.begin(label))
        with self._hold_lock:
            self._hold = self._last_hold = hold
        self._enqueue(label, frame[1], hold.files)
        hold.frames = 1
        hold.thread = threading.Thread(target=self._record, args=(hold, frame[0]), name="edgeclf-collect-hold",
                                       daemon=True)
        hold.thread.start()
        return {"label": label, "holding": True}

    def repeat_hold(self) -> dict:
        """The page says the press is still held past its tap time: from now on, one frame every 1/rate s.

        The page decides, not this server's clock: a tap whose release reaches the server late (a phone on a
        slow network, a busy machine) is still one frame, as the button promised.
        """
        with self._hold_lock:
            hold = self._hold
            if hold is None:  # released, or the lease ran out, before the page's repeat came
                return {"holding": False}
            hold.renewed = hold.repeat_at = time.monotonic()
        hold.wake.set()
        return {"label": hold.label, "holding": True}

    def renew(self) -> bool:
        with self._hold_lock:
            if self._hold is None:
                return False
            self._hold.renewed = time.monotonic()
            return True

    def stop_hold(self) -> dict:
        with self._hold_lock:
            hold, self._hold = self._hold, None
        if hold is None:
            return {"label": None, "frames": 0}
        hold.stopped_at = time.monotonic()
        hold.stop.set()
        hold.wake.set()
        if hold.thread is not None and hold.thread is not threading.current_thread():
            # A tick due before the release may still be waiting for its frame (one period at most): the figures
            # answered are then final, not one frame short of what lands on disk.
            hold.thread.join(timeout=2.0 / self.options.rate + 1.0)
        repeated = None if hold.repeat_at is None else hold.stopped_at - hold.repeat_at
        return {"label": hold.label, "frames": hold.frames, "skipped": hold.skipped,
                "seconds": hold.stopped_at - hold.started, "repeated_seconds": repeated}

    def _record(self, hold: _Hold, last_serial: int) -> None:
        """Waits for the page's repeat (a tap never sends one), then ticks at repeat_at + k/rate (k = 0, 1, ...):
        a tick due before the release writes the newest frame."""
        while not hold.wake.wait(0.1):
            if self._lease_ran_out(hold):
                return
        if hold.repeat_at is None:  # released before the page's repeat: a tap
            return
        period, tick = 1.0 / self.options.rate, 0
        while True:
            due = hold.repeat_at + tick * period
            hold.stop.wait(max(0.0, due - time.monotonic()))
            if hold.stop.is_set() and (hold.stopped_at is None or due >= hold.stopped_at):
                return
            if self._lease_ran_out(hold):
                return
            frame = self.latest(last_serial, timeout=period)
            if frame is None:
                hold.skipped += 1
            else:
                last_serial = frame[0]
                self._enqueue(hold.label, frame[1], hold.files)
                hold.frames += 1
            tick += 1

    def _lease_ran_out(self, hold: _Hold) -> bool:
        """True, and the hold ended, when its page stopped renewing it (a closed tab, a lost network)."""
        if time.monotonic() - hold.renewed <= HOLD_LEASE_S:
            return False
        with self._hold_lock:
            if self._hold is hold:
                self._hold = None
        return True

    def settle(self) -> None:
        """Ends any hold and waits until its last frame is on disk."""
        self.stop_hold()
        last = self._last_hold
        if last is not None and last.thread is not None:
            last.thread.join(timeout=5)  # a tick due before the release may still be queueing its frame
        self.flush()

    def undo(self) -> dict:
        self.settle()
        return self.folder.undo()

    def state(self) -> dict:
        with self._hold_lock:
            holding, held = (self._hold.label, self._hold.frames) if self._hold else (None, 0)
        return {**self.folder.state(), "source": self.name, "rate": self.options.rate, "holding": holding,
                "held": held, "error": self.error}

    def close(self) -> None:
        self.settle()
        self.closed.set()
        with self._write_condition:
            self._write_condition.notify_all()
        with self._condition:
            self._condition.notify_all()
        self._writer.join(timeout=5)
        self._reader.join(timeout=5)


# --- the page ------------------------------------------------------------------------------------------

class CollectServer:
    """The collect page: live view, capture, undo, classes, and the review grid; JSON API over POST.

    Serves only its own paths; review images only by the names the review store lists. Requests that
    change files must be same-origin JSON (a page on another site cannot post them), and, off
    loopback, carry the password (`auth`, runtime/webauth.py). Runs on the camera view's
    `BoundedHTTPServer`: at most `viewers` live views, `max_connections` connections in all, and
    connections that stall (or sit idle between keep-alive requests) for `request_timeout` seconds closed.
    """

    def __init__(self, host: str, port: int, folder: PhotoFolder, camera: Camera | None = None,
                 review: Any = None, auth: Any = None, viewers: int = DEFAULT_VIEWERS,
                 max_connections: int = MAX_CONNECTIONS, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.folder, self.camera, self.review, self.auth = folder, camera, review, auth
        self.closed = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if server._allowed(self):
                    server._get(self)

            def do_POST(self) -> None:  # noqa: N802
                if server._allowed(self):
                    server._post(self)

        self._server = BoundedHTTPServer((host, port), Handler, viewers, max_connections, request_timeout,
                                         name="edgeclf-collect-serve")
        self.address = self._server.server_address[:2]
        self._server.start()

    @property
    def url(self) -> str:
        host = self.address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.address[1]}/"

    @property
    def refused(self) -> int:
        """Connections closed on accept because `max_connections` were open."""
        return self._server.refused

    @property
    def busy(self) -> int:
        """Live views turned away with 503."""
        return self._server.busy

    def _allowed(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.auth is not None and not self.auth.check(handler.headers):
            self.auth.challenge(handler)
            return False
        return True

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path == "/":
            _send(handler, HTTPStatus.OK, "text/html; charset=utf-8", PAGE_FILE.read_bytes())
        elif path == "/state.json":
            _send_json(handler, self.state())
        elif path == "/stream.mjpg" and self.camera is not None:
            self._stream(handler)
        elif (match := re.fullmatch(r"/thumb/(\d{1,9})\.jpg", path)) and (data := self.folder.thumbnail(int(match[1]))):
            _send(handler, HTTPStatus.OK, "image/jpeg", data)
        elif (match := re.fullmatch(r"/review/([\w-]{1,80})\.jpg", path)) and self.review is not None \
                and (data := self.review.image(match[1])) is not None:
            _send(handler, HTTPStatus.OK, "image/jpeg", data)
        else:
            _send(handler, HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def state(self) -> dict:
        state = self.camera.state() if self.camera is not None else {**self.folder.state(), "source": None}
        state["review"] = self.review.items() if self.review is not None else None
        return state

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, 4096)) if length else b""
        if length > 4096:  # the rest is unread: this connection cannot carry another request
            handler.close_connection = True
        if not handler.headers.get("Content-Type", "").startswith("application/json") or not _same_origin(handler):
            _send(handler, HTTPStatus.FORBIDDEN, "text/plain", b"only the page itself may change files\n")
            return
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            _send(handler, HTTPStatus.BAD_REQUEST, "text/plain", b"expected a JSON object\n")
            return
        try:
            result = self.act(path, request)
        except UserError as exc:
            _send_json(handler, {"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            return
        if result is None:
            _send(handler, HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
            return
        _send_json(handler, {**result, "state": self.state()})

    def act(self, path: str, request: dict) -> dict | None:
        """One request of the page's API; None for a path it does not have."""
        label = str(request.get("label", ""))
        camera = self.camera
        if path == "/api/label":
            return {"label": self.folder.add_label(label)}
        if path == "/api/review/assign" and self.review is not None:
            return self.review.assign(str(request.get("name", "")), label, self.folder)
        if path == "/api/review/discard" and self.review is not None:
            return self.review.discard(str(request.get("name", "")))
        if camera is None:
            return None
        if path == "/api/hold/start":
            return camera.start_hold(label)
        if path == "/api/hold/repeat":
            return camera.repeat_hold()
        if path == "/api/hold/renew":
            return {"holding": camera.renew()}
        if path == "/api/hold/stop":
            return camera.stop_hold()
        if path == "/api/undo":
            return camera.undo()
        return None

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        with self._server.stream(handler) as admitted:
            if not admitted:
                return
            handler.send_response(HTTPStatus.OK)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            handler.send_header("Cache-Control", "no-store")
            handler.send_header("Connection", "close")
            handler.end_headers()
            serial = 0
            try:
                while not self.closed.is_set() and self.camera is not None and not self.camera.closed.is_set():
                    preview = self.camera.preview(serial)
                    if preview is None:
                        continue
                    serial, jpeg = preview
                    write_part(handler, jpeg)
            except OSError:
                return  # the viewer went away or stopped reading (socket timeout)

    def close(self) -> None:
        self.closed.set()
        self._server.stop()


def _same_origin(handler: BaseHTTPRequestHandler) -> bool:
    origin = handler.headers.get("Origin")
    if origin is None:
        return True  # not sent by a browser's cross-site request (scripts, curl)
    return origin.split("://", 1)[-1].rstrip("/") == (handler.headers.get("Host") or "")


def _send_json(handler: BaseHTTPRequestHandler, data: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
    _send(handler, status, "application/json", json.dumps(data).encode())


# --- the terminal --------------------------------------------------------------------------------------

TERMINAL_HELP = "keys: 1-9 capture one frame into that class, u undo the last capture, q quit"


def run_terminal(camera: Camera, stdin: IO = sys.stdin, say: Callable[[str], None] = print,
                 stop: threading.Event | None = None) -> None:
    """Keys 1-9 capture into the nth class, u undoes, q (or Ctrl-D) quits; over SSH, no browser needed.

    The terminal is switched to cbreak mode (keys arrive without Enter, Ctrl-C still stops) and restored.
    """
    import termios
    import tty

    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    labels = camera.folder.labels
    try:
        tty.setcbreak(fd)  # before the help: keys typed once it shows arrive one by one, unechoed
        say("classes: " + ", ".join(f"{i + 1} {label}" for i, label in enumerate(labels[:9])))
        say(TERMINAL_HELP)
        while camera.error is None and not (stop is not None and stop.is_set()):
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            key = os.read(fd, 1).decode("latin-1")
            if key in ("q", "\x04", ""):
                break
            if key == "u":
                undone = camera.undo()
                say(f"undo: removed {undone['removed']} from {undone['label']}   {_counts(camera)}" if undone["label"]
                    else "undo: nothing to undo")
            elif key.isdigit() and 1 <= int(key) <= min(9, len(labels)):
                label = labels[int(key) - 1]
                camera.snap(label)
                camera.settle()
                say(f"{label}: +1   {_counts(camera)}")
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    if camera.error:
        say(f"stopped: {camera.error}")


def _counts(camera: Camera) -> str:
    counts = camera.folder.state()["counts"]
    return "  ".join(f"{label} {counts[label]}" for label in camera.folder.labels)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


# --- the command ---------------------------------------------------------------------------------------

def run_collect(out: str, source: str | None = None, labels: str | None = None, serve: str | None = None,
                rate: float = 10.0, quality: int = 90, size: str | None = None, roi: str | None = None,
                resolution: str | None = None, review: str | None = None, serve_open: bool = False,
                password_file: str | None = None, say: Callable[[str], None] = print, stdin: IO = sys.stdin,
                open_browser: bool = True) -> dict:
    """`edgeclf collect`: the page (--serve, or a local browser when there is a display), else the terminal.

    Runs until Ctrl-C, SIGTERM, q in the terminal, or a live source that ends; returns the summary.

    Raises:
        CollectError / ReviewError: a bad option, with the value and the fix; nothing is written then.
    """
    import signal

    from edgeclf.runtime.review import ReviewStore
    from edgeclf.runtime.serve import parse_address
    from edgeclf.runtime.sources import parse_resolution
    from edgeclf.runtime.stream import StreamOptionError, parse_roi

    try:
        options = CollectOptions(rate, quality, parse_size(size) if size else None, parse_roi(roi) if roi else None)
        address = parse_address(serve) if serve else None
        capture_size = parse_resolution(resolution) if resolution else None
    except (StreamOptionError, SourceError, ValueError) as exc:
        raise CollectError(str(exc)) from exc
    folder = PhotoFolder(Path(out), parse_labels(labels))
    store = ReviewStore(Path(review)) if review else None
    if source is None and store is None:
        raise CollectError("collect needs --source (a webcam index, picamera, a video file, a URL or a folder of "
                           "images) to capture from, or --review DIR to assign the frames a camera kept.")
    terminal = address is None and not has_display() and stdin.isatty()
    if address is None and not terminal:
        if not has_display():
            raise CollectError("no terminal to read keys from and no display: pass --serve HOST:PORT "
                               "(e.g. --serve 0.0.0.0:8080 with a password) and open the page in a browser.")
        address = ("127.0.0.1", 0)
    if terminal and store is not None:
        raise CollectError("--review shows the frames in a browser: add --serve 127.0.0.1:8080 (or 0.0.0.0:8080 "
                           "with a password) and open the page.")
    if terminal and not folder.labels:
        raise CollectError(f"the terminal needs classes for keys 1-9: pass --labels a,b,c (or put class folders "
                           f"in {folder.root}).")
    auth = None
    if address is not None:
        from edgeclf.runtime.webauth import WebAuth

        try:
            auth = WebAuth.for_serving(address[0], open_=serve_open, password_file=password_file)
        except ValueError as exc:
            raise CollectError(str(exc)) from exc
    camera = Camera(source, folder, options, capture_size) if source is not None else None
    if folder.stale_removed:
        say(f"removed {folder.stale_removed} temporary file(s) an interrupted run left in {folder.root}")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) \
        if threading.current_thread() is threading.main_thread() else None
    started, ended = time.monotonic(), "stopped"
    server = None
    try:
        if terminal:
            run_terminal(camera, stdin, say, stop)
        else:
            server = CollectServer(address[0], address[1], folder, camera, store, auth)
            say(f"serving {server.url}" + (" (password required)" if auth is not None and auth.required else ""))
            if serve is None and open_browser:
                import webbrowser

                webbrowser.open(server.url)
            while not stop.wait(0.2):
                if camera is not None and camera.error:
                    break
    except KeyboardInterrupt:
        ended = "interrupted"
    finally:
        if server is not None:
            server.close()
        if camera is not None:
            camera.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    error = camera.error if camera is not None else None
    state = folder.state()
    return {"out": str(folder.root), "counts": state["counts"], "written": state["written"],
            "seconds": round(time.monotonic() - started, 3), "ended": f"source failed: {error}" if error else ended}
