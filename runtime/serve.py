"""`edgeclf camera --serve`: the live annotated stream (MJPEG) and the current top-k for a browser.

Serves exactly three paths: the page, the stream and a JSON status; nothing from the file system.
Safe to leave running on a network: a password when one is set (runtime/webauth.py, required off
loopback) and the limits of `BoundedHTTPServer`, which every page edgeclf serves (this one and
`edgeclf collect`'s) runs on. A frame is annotated and JPEG-encoded only while someone watches the
stream, once, and shared by every viewer.
"""
from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import cv2
import numpy as np

from edgeclf.runtime.sinks import FrameResult, Sink
from edgeclf.runtime.webauth import WebAuth

log = logging.getLogger(__name__)

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>edgeclf camera</title>
<style>body{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:16px}
#labels{font-size:22px;margin:10px 0}img{max-width:100%;border:1px solid #444}</style></head>
<body><h1>edgeclf camera</h1><div id="labels">waiting for the first frame...</div>
<img id="stream" src="/stream.mjpg" alt="live stream">
<script>
async function poll(){try{const r=await fetch('/status.json',{cache:'no-store'});const s=await r.json();
if(s.result){document.getElementById('labels').textContent=s.result.top_k.map(
t=>t.label+' '+t.score.toFixed(2)).join('   ')+'   (frame '+s.result.frame+', '+s.fps.toFixed(1)+' FPS)';}}
catch(e){} setTimeout(poll,300);} poll();
</script></body></html>"""
BOUNDARY = b"edgeclf-frame"
DEFAULT_VIEWERS = 4
SPARE_CONNECTIONS = 8  # connections beyond the streams: the page, status polls, a refused viewer's 503
REQUEST_TIMEOUT_S = 10.0  # a client must send its request, and keep reading the stream, within this
IDLE_STREAM_S = 30.0  # a stream with no new frame for this long is ended (the camera stalled)
STOP_POLL_S = 0.1  # how often the serving thread looks for `stop`: Ctrl-C waited up to 0.5 s (socketserver's default)


class BoundedHTTPServer(ThreadingHTTPServer):
    """The HTTP server under every page edgeclf serves: safe to leave running on a network.

    A thread per connection, but at most `max_connections` at once: the others are closed on accept, so
    a client that opens hundreds of idle sockets cannot use up threads or memory (the rest wait in the
    kernel's bounded listen queue). Each connection's socket times out after `request_timeout` seconds
    without progress, reading a request or writing a response, so a silent or stalled client (an idle
    keep-alive connection too) frees its place. At most `viewers` streams at once (`stream`): the next
    one gets 503 with Retry-After.

    Args:
        handler: the request handler class; its own `timeout` (if any) wins over `request_timeout`.
        name: the serving thread's name (`start`).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, viewers: int = DEFAULT_VIEWERS,
                 max_connections: int | None = None, request_timeout: float = REQUEST_TIMEOUT_S,
                 name: str = "edgeclf-serve") -> None:
        if viewers < 1:
            raise ValueError(f"--serve-viewers must be >= 1; received {viewers}. Use e.g. --serve-viewers {DEFAULT_VIEWERS}.")
        self.max_connections = max_connections or viewers + SPARE_CONNECTIONS
        if self.max_connections <= viewers:
            raise ValueError(f"max_connections must be more than the {viewers} viewer(s), so that a full house "
                             f"can still load the page; received {self.max_connections}.")
        self.max_viewers, self.request_timeout = viewers, request_timeout
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._lock = threading.Lock()
        self.refused = 0  # connections closed on accept because max_connections were open
        self.viewers = 0  # streams being served now
        self.busy = 0  # viewers turned away with 503
        super().__init__(address, handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(STOP_POLL_S,), name=name, daemon=True)

    def start(self) -> None:
        """Serves in a thread of its own until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        request.settimeout(self.request_timeout)  # before the handler reads a byte
        super().finish_request(request, client_address)

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:
        """A client that went away mid-request (a reset, a broken pipe, a timeout: a phone that locked its screen) is
        normal on a network, a debug line; socketserver printed a traceback on stderr for it. Anything else is a bug:
        logged with its traceback, and the server goes on."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("%s: %s went away (%s)", self._thread.name, client_address[0], error)
        else:
            log.error("%s: the request from %s failed", self._thread.name, client_address[0], exc_info=True)

    @contextmanager
    def stream(self, handler: BaseHTTPRequestHandler, first: Callable[[], None] | None = None) -> Iterator[bool]:
        """A viewer's place for as long as the `with` block streams: yields True, or answers 503 and yields False
        when `viewers` streams are being served. `first` runs (under the count's lock) for the first viewer."""
        with self._lock:
            full = self.viewers >= self.max_viewers
            if full:
                self.busy += 1
            else:
                self.viewers += 1
                if self.viewers == 1 and first is not None:
                    first()
        if full:
            body = f"{self.max_viewers} viewer(s) are watching, the most this server streams to; try again later\n"
            handler.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Retry-After", "10")
            handler.end_headers()
            handler.wfile.write(body.encode())
            yield False
            return
        try:
            yield True
        finally:
            with self._lock:
                self.viewers -= 1


class LiveServer:
    """A small HTTP server fed by publish() from the classification loop.

    Args:
        auth: who may see the pages (None: everyone; see WebAuth.for_serving).
        viewers: streams served at once; one more gets 503.
        max_connections: connections at once, streams included (default: viewers + 8).
        request_timeout: seconds a client may take to send its request or to take the next frame.
    """

    def __init__(self, host: str, port: int, auth: WebAuth | None = None, viewers: int = DEFAULT_VIEWERS,
                 max_connections: int | None = None, request_timeout: float = REQUEST_TIMEOUT_S,
                 idle_stream: float = IDLE_STREAM_S) -> None:
        self.auth = auth or WebAuth(None)
        self._idle_stream = idle_stream
        self._condition = threading.Condition()
        self._jpeg: bytes | None = None
        self._status: dict = {"result": None, "fps": 0.0, "frames": 0}
        self._closed = False
        self.encoded = 0  # frames JPEG-encoded (only while someone watched)
        self.unauthorized = 0  # requests answered 401
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the loop's output is JSON lines
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self._authorized():
                    return
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE)
                elif path == "/status.json":
                    self._send(HTTPStatus.OK, "application/json", json.dumps(server.status()).encode())
                elif path == "/stream.mjpg":
                    server._stream(self)
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

            def do_POST(self) -> None:  # noqa: N802
                if self._authorized():
                    self._send(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"read-only\n")

            do_PUT = do_DELETE = do_POST

            def _authorized(self) -> bool:
                if server.auth.check(self.headers):
                    return True
                with server._condition:
                    server.unauthorized += 1
                server.auth.challenge(self)
                return False

            def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
                send_body(self, status, kind, body)

        self._server = BoundedHTTPServer((host, port), Handler, viewers, max_connections, request_timeout)
        self.address = self._server.server_address[:2]
        self._server.start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/"

    @property
    def watching(self) -> bool:
        """True while at least one stream is open: only then are frames worth annotating and encoding."""
        return self.viewers > 0

    @property
    def viewers(self) -> int:
        """Streams being served now."""
        return self._server.viewers

    @property
    def max_viewers(self) -> int:
        return self._server.max_viewers

    @property
    def busy(self) -> int:
        """Viewers turned away with 503."""
        return self._server.busy

    @property
    def refused(self) -> int:
        """Connections closed on accept because `max_connections` were open."""
        return self._server.refused

    def publish(self, record: dict, frame_bgr: np.ndarray | None = None) -> None:
        """The latest record (for /status.json) and, while someone watches, its annotated frame."""
        jpeg = None
        if frame_bgr is not None:
            ok, encoded = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
            jpeg = encoded.tobytes() if ok else None
        with self._condition:
            if jpeg is not None:
                self._jpeg = jpeg
                self.encoded += 1
            self._status = {"result": record, "fps": record.get("fps", 0.0), "frames": self._status["frames"] + 1}
            self._condition.notify_all()

    def status(self) -> dict:
        with self._condition:
            return dict(self._status)

    def summary(self) -> dict:
        return {"encoded": self.encoded, "busy": self.busy, "unauthorized": self.unauthorized,
                "refused": self.refused, "password": self.auth.required}

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        def fresh() -> None:  # encoding was off while nobody watched: the first viewer waits for a new frame
            with self._condition:
                self._jpeg = None

        with self._server.stream(handler, first=fresh) as admitted:
            if not admitted:
                return
            try:
                handler.send_response(HTTPStatus.OK)
                handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                handler.send_header("Cache-Control", "no-store")
                handler.end_headers()
                last = None
                while True:
                    with self._condition:
                        since = time.monotonic()
                        while (self._jpeg is None or self._jpeg is last) and not self._closed:
                            if time.monotonic() - since > self._idle_stream:
                                return  # no new frame for a long time: free the place
                            self._condition.wait(1.0)
                        if self._closed:
                            return
                        last = self._jpeg
                    write_part(handler, last)
            except OSError:
                return  # the viewer went away or stopped reading (socket timeout)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.stop()


class ServeSink(Sink):
    """The web view as one of the camera's outputs: each record goes to the server, and while someone
    watches, the annotated frame too (nobody watching: no annotation, no JPEG)."""

    name = "serve"
    wants_frames = True

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def handle(self, result: FrameResult) -> None:
        frame = result.annotated() if self.server.watching else None
        self.server.publish(result.record, frame)

    def close(self) -> None:
        self.server.close()

    def summary(self) -> dict:
        return self.server.summary()


def send_body(handler: BaseHTTPRequestHandler, status: HTTPStatus, kind: str, body: bytes) -> None:
    """One whole response, never cached: what every page edgeclf serves answers with."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.wfile.write(body)


def write_part(handler: BaseHTTPRequestHandler, jpeg: bytes) -> None:
    """One JPEG of a multipart/x-mixed-replace stream (boundary BOUNDARY), sent at once."""
    handler.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
    handler.wfile.flush()


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or :PORT or PORT; the host defaults to 127.0.0.1 (0.0.0.0 exposes it, explicitly)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--serve must be HOST:PORT (e.g. 127.0.0.1:8080, or 0.0.0.0:8080 to expose it); "
                         f"received {text!r}.")
    return host or "127.0.0.1", int(port)
