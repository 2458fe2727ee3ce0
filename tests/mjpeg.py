"""An HTTP MJPEG camera on loopback, as the tests' network camera: it can be stalled (the connection stays open and
no frame comes, as a network camera that hangs, so the camera process lives on without classifying) and resumed."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


class MjpegCamera:
    """Serves 64x48 frames of a changing grey every `interval` seconds at `url` until `close()`; `stalled` pauses it."""

    def __init__(self, interval: float = 0.04) -> None:
        self.stalled = threading.Event()
        self.stop = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                count = 0
                try:
                    while not camera.stop.is_set():
                        if camera.stalled.is_set():
                            time.sleep(0.05)
                            continue
                        jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), count * 7 % 255, np.uint8))[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                         % (len(jpeg), jpeg))
                        self.wfile.flush()
                        count += 1
                        time.sleep(interval)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
