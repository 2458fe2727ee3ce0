"""`camera --serve`: the page, the MJPEG stream and the status, nothing else; checked with HTTP and Chromium."""
from __future__ import annotations

import http.client
import json
import logging
import subprocess
import tempfile
import threading
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.model import Model
from edgeclf.runtime.serve import LiveServer, ServeSink, parse_address
from edgeclf.runtime.sinks import Sinks
from edgeclf.runtime.stream import StreamOptions, run_stream
from tests.browser import CHROMIUM, FLAGS, needs_chromium
from tests.sockets import idle_connections


class LiveTestCard:
    """A live source at about 30 frames per second: a bright square moving over a grey card."""

    name, live = "test card", True

    def __init__(self):
        self.count = 0

    def read(self):
        time.sleep(0.03)
        self.count += 1
        frame = np.full((240, 320, 3), 90, np.uint8)
        x = (self.count * 4) % 260
        frame[80:160, x:x + 60] = (255, 200, 40)
        return frame

    def close(self):
        pass


def _serving(server: LiveServer, model_path, frames: int = 1):
    """Yields `server` fed by the camera loop on a live test card once it has published `frames` frames."""
    done = threading.Event()
    thread = threading.Thread(target=run_stream, daemon=True, kwargs=dict(
        model=Model(model_path), source=LiveTestCard(), options=StreamOptions(), sinks=Sinks([ServeSink(server)]),
        stop=done.is_set))
    thread.start()
    deadline = time.time() + 10
    while server.status()["frames"] < frames and time.time() < deadline:
        time.sleep(0.05)
    yield server
    done.set()
    thread.join(timeout=5)
    server.close()


@pytest.fixture()
def live_server(tiny_int8):
    yield from _serving(LiveServer("127.0.0.1", 0), tiny_int8)


def _get(server, path, method="GET"):
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    return connection, response


def test_page_status_and_stream(live_server):
    _, page = _get(live_server, "/")
    assert page.status == 200 and b"/stream.mjpg" in page.read()
    _, status = _get(live_server, "/status.json")
    data = json.loads(status.read())
    assert data["frames"] >= 1 and data["result"]["top_k"][0]["label"] in [str(i) for i in range(10)]
    connection, stream = _get(live_server, "/stream.mjpg")
    assert stream.status == 200 and "multipart/x-mixed-replace" in stream.getheader("Content-Type")
    assert stream.readline().strip() == b"--edgeclf-frame"
    headers = {}
    while (line := stream.readline().strip()):
        key, _, value = line.decode().partition(": ")
        headers[key] = value
    jpeg = stream.read(int(headers["Content-Length"]))
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (240, 320, 3)
    connection.close()


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/stream.mjpg/../../README.md",
                                  "/tests/fixtures/digits_tiny/labels.txt", "//etc/passwd", "/index.html"])
def test_nothing_else_is_served(live_server, path):
    _, response = _get(live_server, path)
    assert response.status == 404 and response.read() == b"not found\n"


def test_read_only(live_server):
    _, response = _get(live_server, "/", method="POST")
    assert response.status == 405


def test_several_viewers_share_one_encoding(live_server):
    connections = [_get(live_server, "/stream.mjpg") for _ in range(4)]
    for _, stream in connections:
        assert stream.readline().strip() == b"--edgeclf-frame"
    assert all(stream.status == 200 for _, stream in connections)
    for connection, _ in connections:
        connection.close()


def test_address_parsing():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(ValueError, match="--serve must be HOST:PORT"):
        parse_address("host:99999")


def test_cli_serve_announces_its_address(tiny_int8, tmp_path):
    from tests.runtime.test_camera import make_video

    video = make_video(tmp_path / "clip.mp4")
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--serve", "127.0.0.1:0",
                                      "--max-frames", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert "serving http://127.0.0.1:" in result.output


@needs_chromium
def test_chromium_shows_the_frame_and_labels(live_server, tmp_path):
    with tempfile.TemporaryDirectory() as profile:
        base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
        dom = subprocess.run([*base, "--dump-dom", live_server.url], capture_output=True, text=True, timeout=60).stdout
        shot = tmp_path / "page.png"
        subprocess.run([*base, "--window-size=800,600", f"--screenshot={shot}", live_server.url],
                       capture_output=True, timeout=60)
    labels = dom.split('id="labels">', 1)[1].split("</div>", 1)[0]
    assert "FPS" in labels and "waiting" not in labels  # the script filled in the live top-k
    image = cv2.imread(str(shot))
    # The stream's orange square (BGR 40, 200, 255) is on screen: the frame rendered, not just the page.
    orange = np.all(np.abs(image.astype(int) - (40, 200, 255)) < 40, axis=2)
    assert orange.sum() > 500


# --- safe on a network (issue 30): password, viewer limit, bounded connections, no encoding unwatched ----------

@pytest.fixture()
def guarded_server(tiny_int8):
    from edgeclf.runtime.webauth import WebAuth

    server = LiveServer("127.0.0.1", 0, auth=WebAuth("correct horse"), viewers=2, max_connections=6,
                        request_timeout=1.0)
    yield from _serving(server, tiny_int8, frames=3)


def _authorized_get(server, path, password="correct horse"):
    import base64

    connection = http.client.HTTPConnection(*server.address, timeout=10)
    token = base64.b64encode(f"viewer:{password}".encode()).decode()
    connection.request("GET", path, headers={"Authorization": f"Basic {token}"} if password else {})
    return connection, connection.getresponse()


def test_wrong_or_missing_password_gets_401_and_no_frame(guarded_server):
    for path in ("/", "/status.json", "/stream.mjpg", "/nothing"):
        for password in (None, "wrong horse", "correct hors", ""):
            connection, response = _authorized_get(guarded_server, path, password)
            body = response.read()
            assert response.status == 401 and response.getheader("WWW-Authenticate").startswith("Basic realm=")
            assert b"\xff\xd8" not in body and b"top_k" not in body and b"edgeclf-frame" not in body
            connection.close()
    assert guarded_server.unauthorized == 16 and guarded_server.encoded == 0


def test_right_password_sees_the_stream(guarded_server):
    _, page = _authorized_get(guarded_server, "/")
    assert page.status == 200 and b"/stream.mjpg" in page.read()
    connection, stream = _authorized_get(guarded_server, "/stream.mjpg")
    assert stream.status == 200 and stream.readline().strip() == b"--edgeclf-frame"
    connection.close()


def test_no_jpeg_is_encoded_while_nobody_watches(guarded_server):
    frames = guarded_server.status()["frames"]
    assert frames >= 3 and guarded_server.encoded == 0  # classified and published, never encoded
    connection, stream = _authorized_get(guarded_server, "/stream.mjpg")
    assert stream.readline().strip() == b"--edgeclf-frame"
    assert guarded_server.encoded >= 1
    connection.close()


def test_viewer_over_the_limit_gets_503(guarded_server):
    viewers = [_authorized_get(guarded_server, "/stream.mjpg") for _ in range(2)]
    for _, stream in viewers:
        assert stream.status == 200 and stream.readline().strip() == b"--edgeclf-frame"
    connection, third = _authorized_get(guarded_server, "/stream.mjpg")
    assert third.status == 503 and b"\xff\xd8" not in third.read()
    connection.close()
    for connection, stream in viewers:
        stream.close()  # the response holds the socket open too
        connection.close()
    deadline = time.time() + 10  # a place is free again once a viewer left
    while guarded_server.viewers and time.time() < deadline:
        time.sleep(0.05)
    connection, again = _authorized_get(guarded_server, "/stream.mjpg")
    assert again.status == 200
    connection.close()


def test_hundreds_of_idle_sockets_cannot_exhaust_the_server(guarded_server):
    with idle_connections(guarded_server.address) as threads_gained:
        assert threads_gained <= 6  # at most max_connections handler threads
        # The server closed most of them at once, and times out the ones it took; then it serves again.
        deadline = time.time() + 15
        status = None
        while time.time() < deadline:
            try:
                connection, response = _authorized_get(guarded_server, "/status.json")
                status = response.status
                connection.close()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                time.sleep(0.2)
        assert status == 200
        assert guarded_server.refused > 0  # closed on accept (the rest wait in the kernel's bounded listen queue)


def test_a_viewer_that_resets_mid_request_is_no_traceback(live_server, capfd, caplog):
    """Phones drop connections all the time: that is one debug line, not socketserver's traceback on stderr."""
    import socket
    import struct

    for _ in range(3):
        client = socket.create_connection(live_server.address, timeout=5)
        client.sendall(b"GET /status.json HTTP/1.1\r\nHost: x")  # no end of headers: the server reads on
        time.sleep(0.1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        client.close()
    time.sleep(0.3)
    connection, response = _get(live_server, "/status.json")  # and it serves on
    assert response.status == 200
    connection.close()
    err = capfd.readouterr().err
    assert "Exception occurred" not in err and "Traceback" not in err, err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
