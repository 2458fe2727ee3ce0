"""`edgeclf camera --serve`: the live annotated stream (MJPEG) and the current top-k for a browser.

Serves exactly three paths: the page, the stream and a JSON status; nothing from the file system.
Each frame is JPEG-encoded once and shared, so more viewers cost network, not inference time.
"""
from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edgeclf.runtime.sinks import FrameResult, Sink

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


class LiveServer:
    """A small threaded HTTP server fed by publish() from the classification loop."""

    def __init__(self, host: str, port: int) -> None:
        self._condition = threading.Condition()
        self._jpeg: bytes | None = None
        self._status: dict = {"result": None, "fps": 0.0, "frames": 0}
        self._closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: the loop's output is JSON lines
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
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
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"read-only\n")

            do_PUT = do_DELETE = do_POST

            def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgeclf-serve", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/"

    def publish(self, record: dict, frame_bgr: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
        with self._condition:
            if ok:
                self._jpeg = jpeg.tobytes()
            self._status = {"result": record, "fps": record.get("fps", 0.0), "frames": self._status["frames"] + 1}
            self._condition.notify_all()

    def status(self) -> dict:
        with self._condition:
            return dict(self._status)

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        last = None
        try:
            while True:
                with self._condition:
                    while (self._jpeg is None or self._jpeg is last) and not self._closed:
                        self._condition.wait(1.0)
                    if self._closed:
                        return
                    last = self._jpeg
                handler.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    + str(len(last)).encode() + b"\r\n\r\n" + last + b"\r\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the viewer went away

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()


class ServeSink(Sink):
    """The web view as one of the camera's outputs: each annotated frame and record go to the server."""

    name = "serve"
    wants_frames = True

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def handle(self, result: FrameResult) -> None:
        frame = result.annotated()
        if frame is not None:
            self.server.publish(result.record, frame)

    def close(self) -> None:
        self.server.close()


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or :PORT or PORT; the host defaults to 127.0.0.1 (0.0.0.0 exposes it, explicitly)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--serve must be HOST:PORT (e.g. 127.0.0.1:8080, or 0.0.0.0:8080 to expose it); "
                         f"received {text!r}.")
    return host or "127.0.0.1", int(port)
