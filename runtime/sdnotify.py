"""systemd's notify protocol for the camera loop, as one of its sinks (no dependency: a datagram socket).

Under a `Type=notify` unit systemd sets NOTIFY_SOCKET (and WATCHDOG_USEC with `WatchdogSec=`). The
sink tells it READY=1 after the first classified frame, WATCHDOG=1 while frames are classified (at
half the watchdog interval; a sink is handed results only for classified frames, so a camera that
stops delivering stops the pings and systemd restarts the service), STATUS= with the frame rate and
the current state, and STOPPING=1 when the loop ends.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Mapping

from edgeclf.runtime.sinks import FrameResult, Sink

STATUS_EVERY_S = 2.0  # STATUS= at most this often (systemctl status shows the latest)


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET (a path, or @name for an abstract socket)."""

    def __init__(self, address: str) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # A unix datagram receiver queues only net.unix.max_dgram_qlen (10) messages: a blocking send to
        # a reader that falls behind would stop this sink's thread, and STOPPING=1 with it. Never wait.
        self._socket.setblocking(False)
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Notifier | None":
        address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
        return cls(address) if address else None

    def send(self, *lines: str) -> bool:
        """Sends the lines as one message; False (counted, never raised) when systemd is not listening."""
        with self._lock:
            try:
                self._socket.sendto("\n".join(lines).encode("utf-8"), self.address)
                self.sent += 1
                return True
            except OSError:
                self.failed += 1
                return False

    def close(self) -> None:
        self._socket.close()


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, when the watchdog is meant for this process."""
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
        pid = int(environ.get("WATCHDOG_PID", os.getpid()))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 and pid == os.getpid() else None


class SystemdSink(Sink):
    """READY / WATCHDOG / STATUS / STOPPING for systemd, from the classified frames.

    While the loop is paused on purpose (MQTT's set topic: frames are read, the model is skipped, so no
    result reaches a sink) a small thread pings instead, with STATUS=paused: a paused camera is not a
    stuck one. `ping(status)` is thread-safe and rate-limited to half the watchdog interval.
    """

    name = "systemd"

    def __init__(self, notifier: Notifier, interval: float | None) -> None:
        self.notifier, self.interval = notifier, interval
        self.ready = False
        self.pings = 0
        self._last_ping = self._last_status = float("-inf")
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._keepalive: threading.Thread | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "SystemdSink | None":
        """The sink when this process runs under systemd with NOTIFY_SOCKET set; otherwise None."""
        notifier = Notifier.from_environment(environ)
        return cls(notifier, watchdog_interval(environ)) if notifier else None

    def start(self) -> None:
        self.notifier.send("STATUS=waiting for the first frame")
        if self.interval is not None and self.controls is not None:
            self._keepalive = threading.Thread(target=self._while_paused, name="edgeclf-sdnotify", daemon=True)
            self._keepalive.start()

    def _while_paused(self) -> None:
        paused = self.controls.paused  # type: ignore[union-attr]
        while not self._closing.wait(self.interval / 2):
            if paused.is_set():
                self.ping("paused (classification stopped on request)")

    def handle(self, result: FrameResult) -> None:
        record, state = result.record, result.state
        now = time.monotonic()
        lines = []
        if not self.ready:
            lines.append("READY=1")
            self.ready = True
        if now - self._last_status >= STATUS_EVERY_S or len(lines):
            current = f"{state.label} ({state.score:.2f})" if state is not None else "undecided"
            lines.append(f"STATUS=classifying at {record.get('fps', 0.0):.1f} FPS; state {current}; "
                         f"frame {record.get('frame')}")
            self._last_status = now
        if lines:
            self.notifier.send(*lines)
        self.ping()

    def ping(self, status: str | None = None) -> None:
        """WATCHDOG=1 when half the watchdog interval has passed since the last one."""
        if self.interval is None:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last_ping < self.interval:
                return
            self._last_ping = now
            self.pings += 1
        self.notifier.send("WATCHDOG=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        self._closing.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=5)
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        self.notifier.close()

    def summary(self) -> dict:
        return {"ready": self.ready, "watchdog_pings": self.pings, "messages": self.notifier.sent,
                "failed": self.notifier.failed}


def stop_on_sigterm() -> None:
    """SIGTERM (systemctl stop) ends the loop as Ctrl-C does: the sinks flush, the summary is printed.
    Call from the main thread."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
