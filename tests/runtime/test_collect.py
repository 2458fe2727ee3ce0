"""edgeclf collect and camera --review without a browser: class names, atomic writes, holds at a rate, undo,
the page's API and password, the terminal through a pty, the review store. The page in Chromium:
test_collect_browser.py."""
from __future__ import annotations

import base64
import http.client
import json
import math
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.collect import Camera, CollectError, CollectOptions, CollectServer, PhotoFolder, check_label
from edgeclf.runtime.review import ReviewError, ReviewSink, ReviewStore, sha256_file
from edgeclf.runtime.sinks import FrameResult
from edgeclf.runtime.state import StateChange, State
from edgeclf.runtime.webauth import WebAuth
from tests.sockets import idle_connections

ROOT = Path(__file__).resolve().parents[2]


def make_clip(path: Path, frames: int = 50, size=(160, 120), fps: int = 25) -> Path:
    """A clip whose every frame differs: an orange bar that grows, a frame number in its pixels. The bar is 4 pixels
    wide at least: at 1 (frame 0), MPEG-4 and JPEG blur it off its colour at column 0, where the tests look for it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 60, np.uint8)
        frame[:, : (i * 3) % size[0] + 4] = (40, 200, 255)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture()
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4")


def jpegs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.jpg"))


def decodes(path: Path) -> bool:
    image = cv2.imread(str(path))
    return image is not None and image.size > 0


@pytest.mark.parametrize("name", ["", "  ", ".hidden", "a/b", "..", "a\\b", "tab\there", "train", "VAL", "x" * 65])
def test_class_names_that_cannot_be_folders_are_refused(name):
    with pytest.raises(CollectError, match="cannot be used"):
        check_label(name)


def test_good_class_names_pass():
    assert [check_label(n) for n in ("cat", " dog ", "no_box-2", "Café")] == ["cat", "dog", "no_box-2", "Café"]


@pytest.mark.parametrize("kwargs, message", [({"rate": 0}, "--rate must be in"), ({"rate": 31}, "--rate must be in"),
                                             ({"quality": 0}, "--quality must be in"),
                                             ({"roi": (0, 0, 0, 5)}, "--roi must be")])
def test_bad_options(kwargs, message):
    with pytest.raises(CollectError, match=message):
        CollectOptions(**kwargs)


def test_stored_frame_is_the_roi_shrunk_to_fit_size():
    image = np.zeros((480, 640, 3), np.uint8)
    assert CollectOptions(roi=(100, 50, 200, 100)).stored(image).shape == (100, 200, 3)
    assert CollectOptions(size=(320, 320)).stored(image).shape == (240, 320, 3)  # aspect kept, never enlarged
    assert CollectOptions(size=(1000, 1000)).stored(image).shape == (480, 640, 3)
    with pytest.raises(CollectError, match="lies outside"):
        CollectOptions(roi=(600, 0, 100, 100)).stored(image)


def test_photo_folder_writes_counts_undoes_and_cleans_what_a_kill_left(tmp_path):
    root = tmp_path / "photos"
    (root / "old").mkdir(parents=True)
    cv2.imwrite(str(root / "old" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    (root / "old" / ".x.jpg.abc.tmp").write_bytes(b"half")  # what write_atomically leaves when killed mid-write
    folder = PhotoFolder(root, ("cat",))
    assert folder.labels == ["cat", "old"] and folder.counts == {"cat": 0, "old": 1} and folder.stale_removed == 1
    assert not (root / "old" / ".x.jpg.abc.tmp").exists()
    assert not (root / "cat").exists()  # a class folder is made by its first frame, never left empty
    image = np.full((30, 40, 3), 128, np.uint8)
    first = folder.write("cat", image, 90, folder.begin("cat"))
    files = folder.begin("cat")
    second = [folder.write("cat", image, 90, files) for _ in range(3)]
    assert first.parent == root / "cat" and len({first, *second}) == 4 and folder.counts["cat"] == 4
    assert sorted(p.name for p in (root / "cat").iterdir()) == sorted(p.name for p in [first, *second])
    assert folder.undo() == {"label": "cat", "removed": 3}  # the whole last capture
    assert jpegs(root / "cat") == [first] and decodes(first)
    assert folder.undo() == {"label": "cat", "removed": 1} and not (root / "cat").exists()
    assert folder.undo() == {"label": None, "removed": 0}
    with pytest.raises(CollectError, match="no class 'dog'"):
        folder.begin("dog")


def _post(address, path, body=None, headers=None):
    connection = http.client.HTTPConnection(*address, timeout=10)
    connection.request("POST", path, json.dumps(body or {}),
                       {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data.startswith(b"{") else data)


def _get(address, path, headers=None):
    connection = http.client.HTTPConnection(*address, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    status, data = response.status, response.read() if path != "/stream.mjpg" else response.readline()
    connection.close()
    return status, data


@pytest.fixture()
def collecting(clip, tmp_path):
    folder = PhotoFolder(tmp_path / "photos", ("cat", "dog"))
    camera = Camera(str(clip), folder, CollectOptions(rate=5))
    server = CollectServer("127.0.0.1", 0, folder, camera)
    yield server, folder, camera
    server.close()
    camera.close()


def test_hold_writes_one_frame_now_and_one_per_period_once_the_page_says_it_is_held(collecting):
    server, folder, camera = collecting
    status, tap = _post(server.address, "/api/hold/start", {"label": "cat"})
    assert status == 200 and tap["holding"]
    time.sleep(0.5)  # a release that reaches the server late (a slow network, a busy machine): 2.5 periods
    status, tapped = _post(server.address, "/api/hold/stop")
    _post(server.address, "/api/hold/start", {"label": "dog"})
    _post(server.address, "/api/hold/repeat")  # what the page sends while the press is still held after 0.4 s
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        time.sleep(0.3)
        _post(server.address, "/api/hold/renew")
    status, held = _post(server.address, "/api/hold/stop")
    camera.settle()  # a tick due just before the release may still be on its way to the writer
    dog = jpegs(folder.root / "dog")
    # The press's frame, then ticks at the repeat + 0, 1/rate, 2/rate ... before the release, each with a new frame
    # of the 25 fps clip.
    assert len(dog) == 1 + math.floor(held["repeated_seconds"] * 5) + 1 - held["skipped"] == held["frames"]  # final
    # A tap (no repeat from the page) is one frame however late its release came.
    assert len(jpegs(folder.root / "cat")) == 1 == tapped["frames"] and tapped["repeated_seconds"] is None
    assert all(decodes(p) and cv2.imread(str(p)).shape == (120, 160, 3) for p in jpegs(folder.root))
    frames = [cv2.imread(str(p)) for p in dog]
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))  # never the same frame twice


def test_a_hold_whose_page_went_away_ends(collecting, monkeypatch):
    import edgeclf.runtime.collect as collect

    monkeypatch.setattr(collect, "HOLD_LEASE_S", 0.3)
    server, folder, camera = collecting
    _post(server.address, "/api/hold/start", {"label": "cat"})
    _post(server.address, "/api/hold/repeat")
    time.sleep(1.5)  # no renewals: the lease runs out after 0.3 s
    camera.flush()
    assert camera.state()["holding"] is None and 1 <= folder.counts["cat"] <= 3


def test_api_refuses_bad_requests(collecting):
    server, folder, _ = collecting
    assert _post(server.address, "/api/hold/start", {"label": "bird"})[1]["error"].startswith("no class 'bird'")
    assert "leading dot" in _post(server.address, "/api/label", {"label": ".git"})[1]["error"]
    assert _post(server.address, "/api/hold/start", {"label": "cat"},
                 {"Origin": "http://evil.example"})[0] == 403  # another site's page cannot write files
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    connection.request("POST", "/api/hold/start", "label=cat", {"Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 403  # a plain form post from anywhere: refused
    for path in ("/../README.md", "/thumb/../../etc/passwd", "/review/x.jpg", "/collect.html", "/thumb/999.jpg"):
        assert _get(server.address, path)[0] == 404
    assert not jpegs(folder.root)
    status, data = _post(server.address, "/api/label", {"label": "bird"})
    assert status == 200 and data["state"]["labels"] == ["cat", "dog", "bird"]


def test_page_stream_and_thumbnails(collecting):
    server, folder, camera = collecting
    status, page = _get(server.address, "/")
    assert status == 200 and b"pointerdown" in page and b"/api/hold/start" in page
    assert _get(server.address, "/stream.mjpg") == (200, b"--edgeclf-frame\r\n")
    camera.snap("cat")
    camera.flush()
    state = json.loads(_get(server.address, "/state.json")[1])
    assert state["counts"] == {"cat": 1, "dog": 0} and state["source"].endswith("clip.mp4")
    status, thumb = _get(server.address, f"/thumb/{state['recent'][0]['id']}.jpg")
    assert status == 200 and cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR).shape[1] <= 96


@pytest.fixture()
def bounded(clip, tmp_path):
    """A collect page with small limits: 1 live view, 4 connections, 1 s to send a request."""
    folder = PhotoFolder(tmp_path / "photos", ("cat",))
    camera = Camera(str(clip), folder, CollectOptions(rate=5))
    server = CollectServer("127.0.0.1", 0, folder, camera, viewers=1, max_connections=4, request_timeout=1.0)
    yield server
    server.close()
    camera.close()


def _served_again(address, deadline_s: float = 15.0) -> int | None:
    """The status of GET /state.json once the server takes a connection again (None: not within the deadline)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            return _get(address, "/state.json")[0]
        except (ConnectionError, http.client.HTTPException, OSError):
            time.sleep(0.2)
    return None


def test_hundreds_of_idle_sockets_cannot_exhaust_the_page(bounded):
    with idle_connections(bounded.address) as threads_gained:
        assert threads_gained <= 4  # at most max_connections handler threads
        # Most were closed on accept; the ones taken time out after 1 s without a request; then the page serves again.
        assert _served_again(bounded.address) == 200
        assert bounded.refused > 0


def test_idle_keep_alive_connections_time_out_and_one_live_view_at_a_time(bounded):
    keep_alive = []
    for _ in range(4):  # every place taken by a keep-alive connection that then sits idle
        connection = http.client.HTTPConnection(*bounded.address, timeout=10)
        connection.request("GET", "/state.json")
        assert connection.getresponse().read().startswith(b"{")
        keep_alive.append(connection)
    for idle in keep_alive:  # each is closed 1 s after its own request: wait for all, not only the first
        assert idle.sock.recv(1) == b""
    assert _served_again(bounded.address) == 200
    connection = http.client.HTTPConnection(*bounded.address, timeout=10)
    connection.request("GET", "/stream.mjpg")
    stream = connection.getresponse()
    assert stream.status == 200 and stream.readline() == b"--edgeclf-frame\r\n"
    status, body = _get(bounded.address, "/stream.mjpg")
    assert status == 503 and bounded.busy == 1  # a second live view waits for the first to end
    stream.close()
    connection.close()
    for idle in keep_alive:
        idle.close()


def test_password_off_loopback(tmp_path):
    folder = PhotoFolder(tmp_path / "photos", ("cat",))
    server = CollectServer("127.0.0.1", 0, folder, auth=WebAuth("correct horse"))
    try:
        assert _get(server.address, "/")[0] == 401 and _get(server.address, "/state.json")[0] == 401
        assert _post(server.address, "/api/label", {"label": "x"})[0] == 401
        good = {"Authorization": "Basic " + base64.b64encode(b"any:correct horse").decode()}
        assert _get(server.address, "/", good)[0] == 200
        assert _get(server.address, "/", {"Authorization": "Basic " + base64.b64encode(b"u:wrong pass").decode()})[0] == 401
    finally:
        server.close()


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/p"], "collect needs --source"),
    (["--out", "{tmp}/p", "--source", "{clip}", "--labels", "a,../b"], "cannot be used"),
    (["--out", "{tmp}/p", "--source", "{clip}", "--labels", "a,a"], "names a twice"),
    (["--out", "{tmp}/p", "--source", "{clip}", "--rate", "0"], "--rate must be in"),
    (["--out", "{tmp}/p", "--source", "{clip}", "--size", "10"], "--size must be WIDTHxHEIGHT"),
    (["--out", "{tmp}/p", "--source", "{clip}", "--serve", "0.0.0.0:0"], "needs a password"),
    (["--out", "{tmp}/p", "--source", "{tmp}/missing.mp4", "--serve", "127.0.0.1:0"], "no such file"),
    (["--out", "{tmp}/p", "--review", "{tmp}/missing", "--serve", "127.0.0.1:0"], "no such folder"),
    (["--out", "{clip}", "--source", "{clip}"], "is a file"),
    (["--out", "{tmp}/p", "--source", "{clip}"], "no terminal to read keys from and no display"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, clip, args, message, monkeypatch):
    monkeypatch.delenv("EDGECLF_WEB_PASSWORD", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(cli, ["collect", *(a.format(tmp=tmp_path, clip=clip) for a in args)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "p").exists()


def test_collect_help():
    result = CliRunner().invoke(cli, ["collect", "--help"])
    assert result.exit_code == 0 and "--rate" in result.output and "--review" in result.output


def _read_until(fd: int, text: str, timeout: float = 60.0) -> str:
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert text.encode() in seen, seen.decode(errors="replace")
    return seen.decode(errors="replace")


def test_terminal_keys_over_a_pty(tmp_path, clip):
    """As over SSH: no display, no --serve; keys 1-9 capture into the nth class, u undoes, q quits."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "edgeclf.cli", "collect", "--source", str(clip),
                                "--out", str(tmp_path / "photos"), "--labels", "cat,dog"],
                               stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT, close_fds=True)
    os.close(child)
    try:
        _read_until(main, "u undo")
        for key, expect in (("1", "cat: +1"), ("2", "dog: +1"), ("2", "dog 2"), ("u", "undo: removed 1 from dog"),
                            ("9", None), ("q", "summary")):
            os.write(main, key.encode())
            if expect:
                _read_until(main, expect)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    assert [p.parent.name for p in jpegs(tmp_path / "photos")] == ["cat", "dog"]


# --- review -------------------------------------------------------------------------------------------

def _result(frame: int, score: float, label: str = "cat", change: StateChange | None = None) -> FrameResult:
    image = np.full((48, 64, 3), frame % 250, np.uint8)
    record = {"frame": frame, "time": 1_700_000_000 + frame * 0.1,
              "top_k": [{"label": label, "score": score}, {"label": "dog", "score": 1 - score}]}
    return FrameResult(record, image, State(label, score, 0.0), change)


def test_review_sink_keeps_unsure_frames_and_changes_rate_limited_and_capped(tmp_path, tiny_int8):
    folder = tmp_path / "review"
    sink = ReviewSink(folder, tiny_int8, below=0.6, every=0.0, max_mb=1.0, region=lambda image: image[:, :32])
    sink.start()
    for i, score in enumerate([0.9, 0.5, 0.95, 0.97]):
        sink.handle(_result(i, score))
    sink.handle(_result(4, 0.99, "dog", StateChange("cat", "dog", 0.99, 0.0, 4)))
    names = sorted(p.stem for p in folder.glob("*.jpg"))
    assert [n.rsplit("-f", 1)[1] for n in names] == ["1", "2", "3", "4"]  # unsure 1; 2, 3 before the change, 4
    sidecar = json.loads((folder / f"{names[0]}.json").read_text())
    assert sidecar["reason"] == "low_score" and sidecar["top_k"][0] == {"label": "cat", "score": 0.5}
    assert sidecar["model"] == {"file": tiny_int8.name, "sha256": sha256_file(tiny_int8)}
    assert json.loads((folder / f"{names[-1]}.json").read_text())["change"]["state"] == "dog"
    assert cv2.imread(str(folder / f"{names[0]}.jpg")).shape == (48, 32, 3)  # the classified region
    assert sink.summary()["reasons"] == {"low_score": 1, "change": 1}
    assert not list(folder.glob(".*"))

    limited = ReviewSink(tmp_path / "limited", tiny_int8, below=0.6, every=3600)
    limited.start()
    for i in range(5):
        limited.handle(_result(i, 0.3))
    assert len(list((tmp_path / "limited").glob("*.jpg"))) == 1

    capped = ReviewSink(tmp_path / "capped", tiny_int8, below=0.6, every=0.0, max_mb=0.004)
    capped.start()
    for i in range(10):
        capped.handle(_result(i, 0.3))
    kept = sorted(p.stem for p in (tmp_path / "capped").glob("*.jpg"))
    total = sum(p.stat().st_size for p in (tmp_path / "capped").iterdir())
    assert total <= 0.004 * 2**20 and kept and kept[-1].endswith("-f9")  # the newest stay, the oldest went
    assert capped.summary()["removed_for_size"] == 10 - len(kept)


@pytest.mark.parametrize("kwargs, message", [({"below": 1.5}, "--review-below"), ({"every": -1}, "--review-every"),
                                             ({"max_mb": 0}, "--review-max-mb")])
def test_bad_review_options(tmp_path, tiny_int8, kwargs, message):
    with pytest.raises(ReviewError, match=message):
        ReviewSink(tmp_path / "r", tiny_int8, **kwargs)


def test_camera_review_then_collect_review_assigns_and_discards(tmp_path, tiny_int8, clip):
    review = tmp_path / "review"
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(clip), "-q", "--review", str(review),
                                      "--review-below", "1.0", "--review-every", "0", "--roi", "0,0,100,100"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[0])["summary"]
    assert summary["sinks"]["review"]["saved"] == len(list(review.glob("*.jpg"))) >= 40
    assert cv2.imread(str(next(review.glob("*.jpg")))).shape == (100, 100, 3)
    store = ReviewStore(review)
    items = store.items()
    assert len(items) == summary["sinks"]["review"]["saved"]
    assert items[0]["guess"] in [str(i) for i in range(10)] and items[0]["model"] == tiny_int8.name
    photos = PhotoFolder(tmp_path / "photos", ("cat", "dog"))
    moved = store.assign(items[0]["name"], "dog", photos)
    assert Path(moved["file"]).parent == tmp_path / "photos" / "dog" and decodes(Path(moved["file"]))
    assert not (review / f"{items[0]['name']}.json").exists() and photos.counts["dog"] == 1
    store.discard(items[1]["name"])
    assert len(store.items()) == len(items) - 2
    with pytest.raises(ReviewError, match="already assigned"):
        store.discard(items[1]["name"])
    with pytest.raises(ReviewError, match="no review frame"):
        store.assign("../../etc/passwd", "dog", photos)
    with pytest.raises(CollectError, match="no class 'bird'"):
        store.assign(items[2]["name"], "bird", photos)
    assert (review / f"{items[2]['name']}.jpg").exists()  # a refused assignment moves nothing


def test_collect_runs_without_tensorflow(tmp_path, clip):
    """collect runs on the device: capturing imports neither TensorFlow nor the toolchain."""
    code = ("import sys\n"
            "from pathlib import Path\n"
            "import edgeclf.cli\n"
            "from edgeclf.runtime.collect import Camera, CollectOptions, PhotoFolder\n"
            f"camera = Camera({str(clip)!r}, PhotoFolder(Path({str(tmp_path / 'p')!r}), ('a',)), CollectOptions())\n"
            "camera.snap('a')\n"
            "camera.close()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')\n"
            "             or m.startswith(('edgeclf.toolchain', 'edgeclf.calibration'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]" and len(jpegs(tmp_path / "p" / "a")) == 1
