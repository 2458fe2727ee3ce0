"""Actions the camera takes when its state changes: a signed webhook, a JPEG snapshot, a GPIO pin.

Each is a `Sink` (sinks.py) with `changes_only` set, so it runs on its own thread and sees only the
frames that changed the debounced state. The webhook keeps every change until the receiver has taken it,
in order, on disk as soon as it has to wait: a receiver that is down, or a restart of edgeclf, loses no change.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2

from edgeclf.runtime.files import cache_root, read_private_file, sync_folder, write_atomically
from edgeclf.runtime.sinks import FrameResult, Sink
from edgeclf.runtime.state import UNKNOWN

log = logging.getLogger(__name__)

SECRET_ENV = "EDGECLF_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Edgeclf-Signature"
DELIVERY_HEADER = "X-Edgeclf-Delivery"
WEBHOOK_QUEUE_MAX = 1000  # changes kept on disk while the receiver is away; then the oldest go (counted)
WEBHOOK_TIMEOUT_S = 5.0  # one POST
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 5.0  # retry pauses double up to this: a receiver back is seen within 5 s
FLUSH_AT_CLOSE_S = 5.0  # at the end of a run, how long to keep delivering; the rest waits on disk
RETRIED_STATUSES = {407, 408, 429}  # 4xx answers that mean "later", not "never" (407: the proxy wants a login)
GPIO_HINT = ("--gpio needs gpiozero: `pip install gpiozero` (in edgeclf's venv), or on Raspberry Pi OS "
             "`sudo apt install python3-gpiozero` and a venv made with --system-site-packages")


class ActionError(ValueError):
    """A bad action option (URL, secret file, pin, folder); the message names it and the fix."""


# --- webhook ---------------------------------------------------------------------------------------

def sign(secret: bytes, body: bytes) -> str:
    """The X-Edgeclf-Signature value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def read_secret(secret_file: str | os.PathLike | None) -> bytes | None:
    """The signing secret: from `secret_file` (files.read_private_file's rule: its owner's only) or
    $EDGECLF_WEBHOOK_SECRET.

    Raises:
        ActionError: the file is missing, not a regular file, readable by group or others, or empty.
    """
    if secret_file is not None:
        try:
            secret = read_private_file(secret_file, "--webhook-secret-file", "webhook's shared secret", binary=True)
        except ValueError as exc:
            raise ActionError(str(exc)) from exc
        if not secret.strip():
            raise ActionError(f"--webhook-secret-file {secret_file} is empty; write the webhook's shared secret into it.")
        return secret.strip()
    value = os.environ.get(SECRET_ENV, "").strip()
    return value.encode() if value else None


def _proxy_for(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
    """The proxy urllib would use for this URL ($http_proxy, $https_proxy, $no_proxy), or None."""
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    return urllib.parse.urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else None


def _delivery_id(body: bytes) -> str:
    """The change's `id`, which every body this sink writes starts with (a body from elsewhere is parsed)."""
    if body.startswith(b'{"id":"'):
        end = body.find(b'"', 7)
        if end > 0:
            return body[7:end].decode()
    try:
        return str(json.loads(body).get("id", ""))
    except (ValueError, AttributeError):
        return ""


def parse_webhook_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ActionError(f"--webhook must be an http:// or https:// URL with a port from 1 to 65535 if any; "
                          f"received {url!r}. Use e.g. --webhook http://192.168.1.10:8123/api/webhook/edgeclf.")
    return url


def default_queue_dir(url: str) -> Path:
    """~/.cache/edgeclf/webhook-<hash of the URL>: each receiver has its own queue, kept across runs."""
    return cache_root() / f"webhook-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class WebhookQueue:
    """Changes waiting for the receiver, in order; on disk (one JSON file per change, numbered) once they wait.

    A change that the receiver takes at once never touches the disk: it is held in memory while its POST is in
    flight (a few milliseconds), as the camera's own queues hold it before. As soon as changes have to wait (a
    POST failed, or a change comes while another one is still waiting) every waiting change is written, in
    order, atomically and flushed with its folder entry, so a restart or a power cut loses none of them; a
    run that ends writes what is left. So a receiver that keeps up costs no disk write per change (on a Pi: no
    SD card write) and one that is away loses nothing. The exposure left: a single change whose POST hangs
    (up to the webhook timeout) with no other change behind it, when the process is killed with SIGKILL.

    At most `limit` changes; adding one more removes the oldest (counted in `overflowed`). The folder is this
    camera's alone (an exclusive lock), so it is listed once, when the queue opens: afterwards the order lives
    in memory.
    """

    def __init__(self, folder: Path, limit: int = WEBHOOK_QUEUE_MAX) -> None:
        if limit < 1:
            raise ActionError(f"--webhook-queue-max must be >= 1; received {limit}. Use e.g. --webhook-queue-max 1000.")
        self.folder, self.limit = Path(folder), limit
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ActionError(f"--webhook-queue {self.folder}: cannot create it ({exc.strerror}).") from exc
        self._lock = threading.Lock()
        self._lock_file = self._hold(self.folder / ".lock")
        self.overflowed = 0
        self._waiting: deque[int] = deque(sorted(int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()))
        self._on_disk: set[int] = set(self._waiting)
        self._bodies: dict[int, bytes] = {}  # what this run queued, so delivering it reads nothing back
        self._next = (self._waiting[-1] + 1) if self._waiting else 0
        self.recovered = len(self._waiting)  # changes a previous run left undelivered
        self.written = 0  # changes this run had to write to disk (they waited)
        # The change first() last handed out (its POST in flight), and whether an overflow dropped it meanwhile: if
        # its POST then lands it was delivered, not lost, and remove() takes it back out of `overflowed`.
        self._in_flight: int | None = None
        self._in_flight_dropped = False

    @staticmethod
    def _hold(path: Path):
        """An exclusive lock on the folder, so two cameras never deliver (and delete) each other's changes."""
        try:
            import fcntl
        except ImportError:  # not on Linux: one camera per queue is then the user's care
            return None
        handle = open(path, "a")  # noqa: SIM115 - held for the life of the queue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise ActionError(f"--webhook-queue {path.parent} is in use by another edgeclf camera; give this one "
                              "its own folder with --webhook-queue DIR.") from exc
        return handle

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:012d}.json"

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, body: bytes, wait: bool = False) -> None:
        """Adds a change. `wait`: the receiver is failing, so it will wait: written at once. A change that comes
        while another is still waiting is written at once too, with every waiting change not on disk yet.

        Raises:
            OSError: the queue folder cannot be written (a full disk); the change stays queued in memory.
        """
        with self._lock:
            number, self._next = self._next, self._next + 1
            queued_behind = bool(self._waiting)
            self._waiting.append(number)
            self._bodies[number] = body
            while len(self._waiting) > self.limit:
                dropped = self._waiting.popleft()
                self._forget(dropped)
                self._in_flight_dropped = self._in_flight_dropped or dropped == self._in_flight
                self.overflowed += 1
            if wait or queued_behind:
                self._write_waiting()

    def persist(self) -> None:
        """Writes every waiting change that is not on disk yet (its POST failed, or the run ends).

        Raises:
            OSError: as `put`.
        """
        with self._lock:
            self._write_waiting()

    def _write_waiting(self) -> None:
        unwritten = [number for number in self._waiting if number not in self._on_disk]
        for number in unwritten:  # oldest first, each file whole (write_atomically); the folder is flushed after
            write_atomically(self._path(number), self._bodies[number])
            self._on_disk.add(number)
            self.written += 1
        if unwritten:
            sync_folder(self.folder)

    def first(self) -> tuple[int, bytes] | None:
        """The oldest waiting change (its number and body), or None."""
        with self._lock:
            while self._waiting:
                number = self._waiting[0]
                self._in_flight, self._in_flight_dropped = number, False
                body = self._bodies.get(number)
                if body is not None:
                    return number, body
                try:
                    return number, self._path(number).read_bytes()
                except FileNotFoundError:  # removed by hand meanwhile
                    self._waiting.popleft()
                    self._on_disk.discard(number)
        return None

    def remove(self, number: int) -> None:
        """Takes a change out once the receiver answered for it (delivered or refused)."""
        with self._lock:
            if self._waiting and self._waiting[0] == number:
                self._waiting.popleft()
            elif number == self._in_flight and self._in_flight_dropped:  # dropped while in flight: not lost after all
                self._in_flight_dropped = False
                self.overflowed -= 1
            self._forget(number)

    def _forget(self, number: int) -> None:
        self._bodies.pop(number, None)
        if number in self._on_disk:
            self._on_disk.discard(number)
            self._path(number).unlink(missing_ok=True)

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()


class WebhookSink(Sink):
    """POSTs each state change as JSON to `url`, signed when a secret is set, in order and at least once.

    `handle` only queues the change (`WebhookQueue`: on disk once it has to wait); a delivery thread POSTs the oldest
    change until the receiver answers 2xx (then removes it), retrying with exponential back-off on
    connection errors, 5xx, 408 and 429. Other 4xx answers mean the receiver refuses that change: it
    is logged and dropped (counted). Each body carries a unique `id` (also in X-Edgeclf-Delivery) so a
    receiver can drop the duplicate that a crash between its 2xx and our removal would cause.
    """

    name = "webhook"
    changes_only = True

    def __init__(self, url: str, secret: bytes | None = None, queue_dir: Path | None = None,
                 queue_max: int = WEBHOOK_QUEUE_MAX, device: str | None = None, model: str | None = None,
                 timeout: float = WEBHOOK_TIMEOUT_S, backoff: tuple[float, float] = (BACKOFF_FIRST_S, BACKOFF_MAX_S)) -> None:
        self.url = parse_webhook_url(url)
        self._parts = urllib.parse.urlsplit(url)
        self._target = (self._parts.path or "/") + (f"?{self._parts.query}" if self._parts.query else "")
        self._connect = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        self._connection: http.client.HTTPConnection | None = None  # kept alive between changes when the receiver allows
        self._request_target, self._proxy_headers = self._target, {}
        self.secret, self.timeout, self.backoff = secret, timeout, backoff
        self.queue = WebhookQueue(queue_dir or default_queue_dir(url), queue_max)
        self.device, self.model = device or socket.gethostname(), model
        self._run_id = uuid.uuid4().hex[:12]
        self.queued = self.delivered = self.rejected = self.retries = 0
        self._wake = threading.Event()  # a new change while the queue was empty
        self._nudge = threading.Event()  # the run ends: retry now instead of after the back-off
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._persist_failed = False  # the waiting changes could not be written; said once

    def start(self) -> None:
        if self.queue.recovered:
            log.warning("webhook %s: %d change(s) left by an earlier run are sent first", self.url, self.queue.recovered)
        self._thread = threading.Thread(target=self._deliver_loop, name="edgeclf-webhook-delivery", daemon=True)
        self._thread.start()

    def handle(self, result: FrameResult) -> None:
        change = result.change
        if change is None:
            return
        body = {"id": f"{self._run_id}-{self.queued}", **change.as_dict(), "device": self.device, "model": self.model}
        self.queued += 1
        try:
            self.queue.put(json.dumps(body, separators=(",", ":")).encode(), wait=self._failing_since is not None)
        except OSError as exc:  # not written (a full disk), but queued in memory: it is delivered all the same
            self._cannot_write(exc)
        self._wake.set()

    def _deliver_loop(self) -> None:
        first, most = self.backoff
        backoff = first
        while not self._stop.is_set():
            item = self.queue.first()
            if item is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            number, body = item
            try:
                outcome = self._post(body)
            except Exception as exc:  # noqa: BLE001 - the delivery thread must outlive one bad change or proxy setting
                log.warning("webhook %s: could not post a change (%s: %s); retrying with back-off", self.url,
                            type(exc).__name__, exc)
                self._disconnect()
                outcome = "retry"
            if outcome == "delivered":
                self.queue.remove(number)
                self.delivered += 1
                backoff = first
                if self._failing_since is not None:
                    log.warning("webhook %s: delivering again after %.0f s", self.url, time.monotonic() - self._failing_since)
                    self._failing_since = None
            elif outcome == "rejected":
                self.queue.remove(number)
                self.rejected += 1
            else:
                self.retries += 1
                self._persist()  # it has to wait now, and so does every change behind it
                self._nudge.wait(backoff)
                backoff = min(backoff * 2, most)

    def _persist(self) -> None:
        try:
            self.queue.persist()
        except OSError as exc:
            self._cannot_write(exc)
        else:
            self._persist_failed = False

    def _cannot_write(self, exc: OSError) -> None:
        """One line until a write of the queue succeeds again, not one per change or retry."""
        if not self._persist_failed:
            self._persist_failed = True
            log.warning("webhook %s: cannot write the waiting changes into %s (%s); they wait in memory only, and a "
                        "restart now would lose them. Free space there or choose another --webhook-queue",
                        self.url, self.queue.folder, exc.strerror)

    def _post(self, body: bytes) -> str:
        """One POST on a kept-alive connection; returns "delivered", "rejected" (drop it) or "retry"."""
        headers = {"Content-Type": "application/json", "User-Agent": "edgeclf-camera", DELIVERY_HEADER: _delivery_id(body)}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                if self._connection is None:
                    self._connection = self._open()
                self._connection.request("POST", self._request_target, body, {**headers, **self._proxy_headers})
                response = self._connection.getresponse()
                response.read()
                if response.will_close:
                    self._disconnect()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                closed = isinstance(exc, (ConnectionError, http.client.BadStatusLine))  # not a timeout: it may have landed
                if reused and attempt == 1 and closed:
                    continue  # the receiver had closed the kept-alive connection: once more, on a new one
                problem = f"cannot reach it ({exc or type(exc).__name__})"
                response = None
                break
        if response is not None:
            if 200 <= response.status < 300:
                return "delivered"
            if 300 <= response.status < 500 and response.status not in RETRIED_STATUSES:
                moved = f" to {response.getheader('Location')}" if 300 <= response.status < 400 else ""
                log.warning("webhook %s: the receiver refused a change with %d %s%s; dropped it (check the URL and "
                            "the secret)", self.url, response.status, response.reason, moved)
                return "rejected"
            problem = f"the receiver answered {response.status} {response.reason}"
        if self._failing_since is None:  # one line per outage, not one per retry
            self._failing_since = time.monotonic()
            log.warning("webhook %s: %s; retrying with back-off, changes wait in %s", self.url, problem, self.queue.folder)
        return "retry"

    def _open(self) -> http.client.HTTPConnection:
        """A connection to the receiver, through the proxy that $http_proxy / $https_proxy name for it (as urllib
        would: not for hosts in $no_proxy): plain HTTP by absolute URL, HTTPS in a CONNECT tunnel."""
        proxy = _proxy_for(self._parts)
        self._request_target, self._proxy_headers = self._target, {}
        port = self._parts.port or (443 if self._parts.scheme == "https" else 80)  # given: an IPv6 host is not re-split
        if proxy is None:
            return self._connect(self._parts.hostname, port, timeout=self.timeout)
        login = {}
        if proxy.username:  # as urllib sends it: basic auth from the proxy URL's user and password
            pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
            login = {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if self._parts.scheme == "https":
            connection = self._connect(proxy.hostname, proxy.port or 80, timeout=self.timeout)
            connection.set_tunnel(self._parts.hostname, port, headers=login)
            return connection
        self._request_target, self._proxy_headers = urllib.parse.urlunsplit(self._parts._replace(fragment="")), login
        return http.client.HTTPConnection(proxy.hostname, proxy.port or 80, timeout=self.timeout)

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Delivers what is queued for up to FLUSH_AT_CLOSE_S; a receiver that is down gets one more try, not
        the whole wait. What is left stays on disk for the next run."""
        deadline = time.monotonic() + FLUSH_AT_CLOSE_S
        retries = self.retries
        self._nudge.set()
        while len(self.queue) and time.monotonic() < deadline:
            if self._failing_since is not None and self.retries > retries:
                break
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(WEBHOOK_TIMEOUT_S + 1.0)
        self._disconnect()
        self._persist()  # what is left waits on disk for the next run
        pending = len(self.queue)
        if pending:
            log.warning("webhook %s: %d change(s) not delivered yet wait in %s for the next run",
                        self.url, pending, self.queue.folder)
        self.queue.close()

    def summary(self) -> dict:
        return {"queued": self.queued, "delivered": self.delivered, "rejected": self.rejected,
                "retries": self.retries, "overflowed": self.queue.overflowed,
                "recovered": self.queue.recovered, "pending": len(self.queue), "written": self.queue.written}


# --- snapshots -------------------------------------------------------------------------------------

# Microseconds (two changes of a file played at full speed can fall in one millisecond, and then name order
# was not time order); earlier runs' milliseconds are still recognised, so the cap counts and removes them too.
SNAPSHOT_NAME = re.compile(r"^\d{8}T\d{6}\.\d{3}(\d{3})?Z_.+\.jpg$")


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "label"


class SnapshotSink(Sink):
    """Writes the frame of each state change as a JPEG into `folder`, keeping the folder under `max_mb`.

    The frame is the one captured, without labels drawn on it: the label and time are in the name,
    and a clean frame is what a user needs to judge the change and to add it to the training data.
    Names are `<UTC time to the microsecond>_<state>_f<frame>.jpg`, so name order is time order; when the folder's
    snapshots pass `max_mb`, the oldest are removed first (only files named this way are touched).
    A write that fails (a full disk) is logged once and counted; the camera goes on.
    """

    name = "snapshots"
    changes_only = True
    wants_frames = True

    def __init__(self, folder: Path, max_mb: float = 100.0, quality: int = 90) -> None:
        if not max_mb > 0:
            raise ActionError(f"--snapshots-max-mb must be > 0; received {max_mb}. Use e.g. --snapshots-max-mb 100.")
        self.folder, self.max_bytes, self.quality = Path(folder), int(max_mb * 1024 * 1024), quality
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ActionError(f"--snapshots {self.folder}: cannot create it ({exc.strerror}).") from exc
        if not os.access(self.folder, os.W_OK):
            raise ActionError(f"--snapshots {self.folder}: not writable by this user; choose another folder.")
        # name -> bytes, oldest first: the folder's snapshots in name (time) order, then each one written here
        self._sizes = {name: (self.folder / name).stat().st_size
                       for name in sorted(p.name for p in self.folder.iterdir() if SNAPSHOT_NAME.match(p.name))}
        self._total = sum(self._sizes.values())
        self.written = self.removed = self.failed = self.too_large = 0
        self._last_error: int | None = None

    def handle(self, result: FrameResult) -> None:
        if result.change is None or result.image is None:
            return
        change = result.change
        moment = datetime.fromtimestamp(change.time, timezone.utc)
        name = f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond:06d}Z_{_safe(change.state)}_f{change.frame}.jpg"
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode frame {change.frame} as JPEG")
        content = encoded.tobytes()
        if len(content) > self.max_bytes:  # larger than the cap on its own: the cap wins, the others stay
            self.too_large += 1
            log.warning("snapshots: %s (%d KB) is larger than --snapshots-max-mb on its own; not kept", name,
                        len(content) // 1024)
            return
        try:
            write_atomically(self.folder / name, content)
        except OSError as exc:
            self.failed += 1
            if exc.errno != self._last_error:  # one line per kind of failure, not one per change
                log.warning("snapshots: cannot write %s (%s); the camera goes on without this snapshot. Free space "
                            "in %s or lower --snapshots-max-mb", exc.filename, exc.strerror, self.folder)
            self._last_error = exc.errno
            return
        self._last_error = None
        self.written += 1
        self._total += len(content) - self._sizes.pop(name, 0)
        self._sizes[name] = len(content)
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        """Removes the oldest snapshots until the folder is under the cap (the newest, last, always fits)."""
        while self._total > self.max_bytes:
            old = next(iter(self._sizes))
            (self.folder / old).unlink(missing_ok=True)
            self._total -= self._sizes.pop(old)
            self.removed += 1

    def summary(self) -> dict:
        return {"written": self.written, "removed_oldest": self.removed, "failed": self.failed,
                "too_large": self.too_large, "kept": len(self._sizes),
                "kept_mb": round(self._total / 1024 / 1024, 3)}


# --- GPIO ------------------------------------------------------------------------------------------

def parse_gpio(specs: tuple[str, ...] | list[str], labels: list[str]) -> list[tuple[str, int | str]]:
    """`LABEL=PIN` options -> [(label, pin)]; a pin is a BCM number (17) or a gpiozero name (GPIO17, BOARD11).

    Raises:
        ActionError: bad syntax, a label the model does not have, or a pin given twice.
    """
    known = list(labels) + [UNKNOWN]
    pairs: list[tuple[str, int | str]] = []
    for spec in specs:
        label, sep, pin = spec.rpartition("=")
        if not sep or not label or not pin.strip():
            raise ActionError(f"--gpio must be LABEL=PIN; received {spec!r}. Use e.g. --gpio {known[0]}=17.")
        if label not in known:
            raise ActionError(f"--gpio {spec}: {label!r} is not one of the model's labels ({', '.join(known)}).")
        pin = pin.strip()
        pairs.append((label, int(pin) if pin.isdigit() else pin))
    pins = [str(p) for _, p in pairs]
    repeated = sorted({p for p in pins if pins.count(p) > 1})
    if repeated:
        raise ActionError(f"--gpio: pin {', '.join(repeated)} is given more than once; one pin follows one label.")
    return pairs


class GpioSink(Sink):
    """Drives each pin high while the state is its label, low otherwise (and low when the camera stops).

    The pins are claimed when the sink is made, so a missing gpiozero, a pin in use or a machine
    without GPIO stops `edgeclf camera` at once with the reason, not after the first change.
    """

    name = "gpio"
    changes_only = True

    def __init__(self, pairs: list[tuple[str, int | str]], pin_factory: Any = None) -> None:
        try:
            from gpiozero import DigitalOutputDevice
        except ImportError as exc:
            raise ActionError(f"{GPIO_HINT}.") from exc
        self.pairs = pairs
        self._devices = []
        try:
            for _, pin in pairs:
                self._devices.append(DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory))
        except Exception as exc:  # noqa: BLE001 - gpiozero raises its own family (BadPinFactory, PinInvalidPin, ...)
            self.close()
            raise ActionError(f"--gpio pin {pin}: {type(exc).__name__}: {exc}. On a machine without GPIO, "
                              "GPIOZERO_PIN_FACTORY=mock tries the rest of the run without hardware.") from exc
        self.switched = 0

    def handle(self, result: FrameResult) -> None:
        if result.change is None:
            return
        for (label, _), device in zip(self.pairs, self._devices):
            if result.change.state == label and not device.value:
                device.on()
                self.switched += 1
            elif result.change.state != label and device.value:
                device.off()
                self.switched += 1

    def close(self) -> None:
        for device in self._devices:
            try:
                device.off()
            finally:
                device.close()
        self._devices = []

    def summary(self) -> dict:
        return {"pins": {str(pin): label for label, pin in self.pairs}, "switched": self.switched}


# --- from the camera's options ---------------------------------------------------------------------

REALTIME_OUTPUTS = ("serve", "mqtt", "webhook")  # outputs that make a clip play as a camera would


def wants_realtime(realtime: bool | None, params: dict) -> bool:
    """--realtime as given, else on when an output meant for a live camera is used (any of REALTIME_OUTPUTS
    present in the command's parameters: the web view, MQTT, a webhook) or --fps asks for a rate.

    Raises:
        ActionError: --fps with --no-realtime (the rate would be ignored).
    """
    fps = params.get("fps")
    if realtime is False and fps is not None:
        raise ActionError(f"--fps {fps:g} is the rate of --realtime playback, and realtime is off (--no-realtime); "
                          "drop one of them.")
    if realtime is not None:
        return realtime
    return fps is not None or any(params.get(name) for name in REALTIME_OUTPUTS)


def from_options(labels: list[str], model_name: str | None, webhook: str | None = None,
                 webhook_secret_file: str | None = None, webhook_queue: str | None = None,
                 webhook_queue_max: int = WEBHOOK_QUEUE_MAX, snapshots: str | None = None,
                 snapshots_max_mb: float = 100.0, gpio: tuple[str, ...] = ()) -> list[Sink]:
    """The action sinks the camera's options ask for, checked before the camera starts.

    Raises:
        ActionError: any bad option, with the fix.
    """
    sinks: list[Sink] = []
    if webhook:
        secret = read_secret(webhook_secret_file)
        sinks.append(WebhookSink(webhook, secret, Path(webhook_queue) if webhook_queue else None, webhook_queue_max,
                                 model=model_name))
        if secret is None:  # said once the URL and the queue are known good, not before a refusal of them
            log.warning("webhook %s: no secret ($%s or --webhook-secret-file), so changes are sent unsigned",
                        webhook, SECRET_ENV)
    elif webhook_secret_file or webhook_queue:
        raise ActionError("--webhook-secret-file and --webhook-queue go with --webhook URL; add it or drop them.")
    if snapshots:
        sinks.append(SnapshotSink(Path(snapshots), snapshots_max_mb))
    if gpio:
        sinks.append(GpioSink(parse_gpio(gpio, labels)))
    return sinks
