"""Actions on state changes (webhook, snapshots, GPIO) and files played as a camera (--realtime, --loop).

The webhook's receiver is a real HTTP server on loopback that checks the signature; GPIO runs on
gpiozero's own mock pin factory; the clips are real videos and image folders written here.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.actions import (ActionError, GpioSink, SnapshotSink, WebhookQueue, WebhookSink,
                                     from_options as action_sinks, parse_gpio, read_secret, wants_realtime)
from edgeclf.runtime.model import Model
from edgeclf.runtime.sinks import CallbackSink, FrameResult, Sinks
from edgeclf.runtime.sources import FrameGrabber, PlayedFile, SourceError, open_source, play_file
from edgeclf.runtime.state import StateChange
from edgeclf.runtime.stream import StreamOptions, run_stream

SECRET = b"s3cret-for-tests"
FAST = (0.05, 0.3)  # webhook back-off for tests: retries within a third of a second


# --- helpers -----------------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver on loopback: checks X-Edgeclf-Signature, records each body in arrival order.

    `fail_next` answers that many requests with `fail_status`; `down(seconds)` closes the port for a while.
    `keep_alive`: HTTP/1.1 connections kept open between requests (as Home Assistant's are), each one
    dropped without a word after `drop_after` requests (as a receiver's idle timeout does); `connections`
    counts them.
    """

    def __init__(self, port: int = 0, secret: bytes | None = SECRET, keep_alive: bool = False,
                 drop_after: int = 0) -> None:
        self.secret, self.bodies, self.bad_signatures = secret, [], 0
        self.fail_next, self.fail_status, self.failed = 0, 500, 0
        self.on_body, self.targets = None, []
        self.keep_alive, self.drop_after, self.connections = keep_alive, drop_after, 0
        self._lock = threading.Lock()
        self._start(port)

    def _start(self, port: int) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"
            requests = 0

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.targets.append((self.path, self.headers.get("Proxy-Authorization")))
                self.requests += 1
                if receiver.drop_after and self.requests >= receiver.drop_after:
                    self.close_connection = True  # after this answer, with no "Connection: close" said
                with receiver._lock:
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        receiver.failed += 1
                        status = receiver.fail_status
                    else:
                        status = 200
                        if receiver.secret is not None:
                            expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                            if not hmac.compare_digest(expected, self.headers.get("X-Edgeclf-Signature", "")):
                                receiver.bad_signatures += 1
                                status = 401
                        if status == 200:
                            receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status == 200 and receiver.on_body is not None:
                    receiver.on_body(len(receiver.bodies))

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def down(self, seconds: float) -> None:
        """Closes the port now (connections refused) and opens it again after `seconds`."""
        self.stop()
        threading.Timer(seconds, self._start, (self.port,)).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _labels(model: Model) -> tuple[str, str]:
    dark, bright = (model.labels[int(np.argmax(model.predict(np.full((16, 16, 3), v, np.uint8))[0]))] for v in (0, 255))
    assert dark != bright, "the fixture model must tell a black frame from a white one"
    return dark, bright


def _folder(path: Path, blocks: int, per_block: int, side: int = 16, noise: bool = False) -> Path:
    """Blocks of dark and bright frames in turn: a change every `per_block` frames."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(blocks * per_block):
        base = 0 if (i // per_block) % 2 == 0 else 235
        image = (base + rng.integers(0, 21, (side, side, 3)) if noise else np.full((side, side, 3), base)).astype(np.uint8)
        cv2.imwrite(str(path / f"{i:04d}.png"), image)
    return path


def _video(path: Path, frames: int, fps: float, side: int = 32) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (side, side))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((side, side, 3), 0 if (i // 5) % 2 == 0 else 255, np.uint8))
    writer.release()
    return path


def _wait_for(condition, limit: float = 20.0) -> None:
    """Waits until `condition()` holds (a bound on a hang, not a timing assertion: the test's asserts follow)."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def _summary(output: str) -> dict:
    """The camera's summary JSON line (the runner mixes stderr's human lines into the output)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"summary"')][-1]["summary"]


def _change(i: int, state: str = "a") -> FrameResult:
    return FrameResult({"frame": i}, change=StateChange(None, state, 0.9, 1_700_000_000.0 + i, i))


# --- webhook -----------------------------------------------------------------------------------------

def test_webhook_survives_a_receiver_outage_in_order_signed_without_duplicates(tiny_float32, tmp_path):
    model = Model(tiny_float32)
    receiver = Receiver()
    receiver.on_body = lambda count: count == 2 and threading.Thread(target=receiver.down, args=(1.5,)).start()
    sink = WebhookSink(receiver.url, SECRET, tmp_path / "queue", model="tiny", backoff=FAST)
    changes: list = []
    source = PlayedFile(open_source(str(_folder(tmp_path / "frames", 12, 5))), fps=20)  # 3 s, a change every 0.25 s
    summary = run_stream(model, source, StreamOptions(confirm=2),
                         Sinks([sink, CallbackSink(lambda r: changes.append(r.change), "changes", changes_only=True)]))
    receiver.stop()
    assert len(changes) == 12 and summary.ended == "source ended"
    figures = summary.sinks["webhook"]
    assert figures["retries"] > 0, "the receiver was down while changes came: the sink must have retried"
    assert figures["delivered"] == 12 and figures["pending"] == 0 and figures["overflowed"] == 0
    assert receiver.bad_signatures == 0
    assert [(b["previous"], b["state"], b["frame"]) for b in receiver.bodies] == \
        [(c.previous, c.state, c.frame) for c in changes]
    assert len({b["id"] for b in receiver.bodies}) == 12
    assert receiver.bodies[0]["model"] == "tiny" and receiver.bodies[0]["device"]


def test_webhook_restart_delivers_the_changes_queued_while_the_receiver_was_down(tiny_float32, tmp_path):
    port = _free_port()  # nothing listens there yet
    queue = tmp_path / "queue"
    first = _folder(tmp_path / "first", 4, 3)
    args = ["camera", str(tiny_float32), "--events-only", "--confirm", "2", "--webhook", f"http://127.0.0.1:{port}/hook",
            "--webhook-queue", str(queue), "--no-realtime"]
    env = {"EDGECLF_WEBHOOK_SECRET": SECRET.decode()}
    down = CliRunner().invoke(cli, args + ["--source", str(first)], env=env)
    assert down.exit_code == 0, down.output
    summary = _summary(down.output)["sinks"]["webhook"]
    assert summary["queued"] == 4 and summary["delivered"] == 0 and summary["pending"] == 4
    assert sorted(p.name for p in queue.glob("*.json")) == [f"{i:012d}.json" for i in range(4)]

    receiver = Receiver(port)
    second = _folder(tmp_path / "second", 3, 3)
    up = CliRunner().invoke(cli, args + ["--source", str(second)], env=env)
    receiver.stop()
    assert up.exit_code == 0, up.output
    summary = _summary(up.output)["sinks"]["webhook"]
    assert summary["recovered"] == 4 and summary["delivered"] == 7 and summary["pending"] == 0
    frames = [b["frame"] for b in receiver.bodies]
    assert frames == [1, 4, 7, 10, 1, 4, 7]  # the first run's four, then the second run's three, in order
    assert len({b["id"] for b in receiver.bodies}) == 7 and receiver.bad_signatures == 0


def test_webhook_writes_a_change_to_disk_only_once_it_has_to_wait(tmp_path):
    receiver = Receiver()
    queue = tmp_path / "queue"
    sink = WebhookSink(receiver.url, SECRET, queue, backoff=FAST)
    sinks = Sinks([sink])
    for i in range(3):
        sinks.publish(_change(i))
        # a receiver that keeps up: nothing waits. Wait for the answer, not for the receiver to have the body: a
        # change published while the last one's answer is still on its way does wait behind it, and is written.
        _wait_for(lambda: sink.delivered == i + 1)
    assert not list(queue.glob("*.json"))
    receiver.stop()  # away: the changes that come now wait, so they are on disk while the camera still runs
    for i in range(3, 6):
        sinks.publish(_change(i))
    names = [f"{n:012d}.json" for n in range(3, 6)]
    _wait_for(lambda: sorted(p.name for p in queue.glob("*.json")) == names)
    assert sorted(p.name for p in queue.glob("*.json")) == names, "a SIGKILL now would lose the waiting changes"
    assert [json.loads((queue / name).read_bytes())["frame"] for name in names] == [3, 4, 5]
    sinks.close()
    figures = sinks.summary()["webhook"]
    assert figures["delivered"] == 3 and figures["pending"] == 3 and figures["written"] == 3
    assert [b["frame"] for b in receiver.bodies] == [0, 1, 2]


def test_webhook_queue_on_a_full_disk_says_so_and_delivers_from_memory(tmp_path, monkeypatch, caplog):
    from edgeclf.runtime import files

    def full(handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    port = _free_port()  # the receiver is away at first, so the changes have to wait and be written
    queue = tmp_path / "queue"
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", SECRET, queue, backoff=FAST)
    monkeypatch.setattr(files.os, "fsync", full)  # and every write fails as on a full disk
    sinks = Sinks([sink])
    for i in range(3):
        sinks.publish(_change(i))
    _wait_for(lambda: sink.retries >= 2)
    receiver = Receiver(port)
    _wait_for(lambda: len(receiver.bodies) == 3)
    sinks.close()
    receiver.stop()
    assert [b["frame"] for b in receiver.bodies] == [0, 1, 2] and receiver.bad_signatures == 0
    assert not [p.name for p in queue.iterdir() if p.name != ".lock"], "no file, not even a temporary, is left"
    lines = [r.getMessage() for r in caplog.records if "cannot write the waiting changes" in r.getMessage()]
    assert len(lines) == 1, "one line for the full disk, not one per retry"
    assert f"into {queue} (No space left on device)" in lines[0] and "--webhook-queue" in lines[0]
    assert not [r for r in caplog.records if "OSError" in r.getMessage()], "no error line per change beside it"


def test_webhook_500_is_retried_with_one_clear_line_and_4xx_is_dropped(tmp_path, caplog):
    receiver = Receiver()
    receiver.fail_next = 3
    sink = WebhookSink(receiver.url, SECRET, tmp_path / "queue", backoff=FAST)
    sinks = Sinks([sink])
    for i in range(3):
        sinks.publish(_change(i))
    _wait_for(lambda: len(receiver.bodies) == 3)
    sinks.close()
    figures = sinks.summary()["webhook"]
    assert receiver.failed == 3 and figures["retries"] == 3 and figures["delivered"] == 3
    assert [b["frame"] for b in receiver.bodies] == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records if "answered 500" in r.getMessage()]
    assert len(lines) == 1 and "retrying" in lines[0]

    receiver.fail_next, receiver.fail_status = 1, 404
    sink = WebhookSink(receiver.url, SECRET, tmp_path / "queue", backoff=FAST)
    sinks = Sinks([sink])
    sinks.publish(_change(5))
    sinks.publish(_change(6))
    _wait_for(lambda: len(receiver.bodies) == 4)
    sinks.close()
    receiver.stop()
    figures = sinks.summary()["webhook"]
    assert figures["rejected"] == 1 and figures["delivered"] == 1 and figures["pending"] == 0
    assert [b["frame"] for b in receiver.bodies][-1] == 6
    assert any("refused a change with 404" in r.getMessage() for r in caplog.records)


def test_webhook_keeps_its_connection_alive_and_a_dropped_one_costs_no_retry(tmp_path):
    receiver = Receiver(keep_alive=True, drop_after=3)
    sink = WebhookSink(receiver.url, SECRET, tmp_path / "queue", backoff=FAST)
    sinks = Sinks([sink])
    for i in range(7):
        sinks.publish(_change(i))
        _wait_for(lambda: sink.delivered == i + 1)  # one at a time: each change finds the connection idle
    sinks.close()
    receiver.stop()
    figures = sinks.summary()["webhook"]
    assert [b["frame"] for b in receiver.bodies] == list(range(7)) and receiver.bad_signatures == 0
    assert receiver.connections == 3  # 3 changes a connection, then a new one: not one connection per change
    assert figures["delivered"] == 7 and figures["retries"] == 0 and figures["pending"] == 0


def test_webhook_goes_through_the_proxy_the_environment_names_and_not_for_no_proxy_hosts(tmp_path, monkeypatch):
    """As urllib does: $http_proxy gets the POST by absolute URL; a host in $no_proxy is reached directly."""
    proxy = Receiver()  # it answers as the receiver would once the proxy forwarded the POST
    monkeypatch.setenv("http_proxy", f"http://cam:p%40ss@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "direct.invalid")
    sinks = Sinks([WebhookSink("http://camera-hooks.invalid:8123/api/webhook/gate", SECRET, tmp_path / "queue", backoff=FAST)])
    sinks.publish(_change(0))
    _wait_for(lambda: len(proxy.bodies) == 1)
    sinks.close()
    login = "Basic " + base64.b64encode(b"cam:p@ss").decode()  # the proxy URL's user and password, as urllib sends them
    assert proxy.targets == [("http://camera-hooks.invalid:8123/api/webhook/gate", login)] and proxy.bad_signatures == 0
    direct = WebhookSink("http://direct.invalid/hook", None, tmp_path / "queue2", backoff=FAST)
    assert direct._open().host == "direct.invalid"  # bypassed: connects to the host itself (no request is sent)
    ipv6 = WebhookSink("http://[fd00::5]/hook", None, tmp_path / "queue3", backoff=FAST)
    monkeypatch.setenv("no_proxy", "*")
    assert (ipv6._open().host, ipv6._open().port) == ("fd00::5", 80)  # the address whole, the scheme's port
    proxy.stop()


def test_webhook_queue_is_bounded_and_counts_what_overflowed(tmp_path):
    sink = WebhookSink(f"http://127.0.0.1:{_free_port()}/hook", None, tmp_path / "queue", queue_max=5, backoff=FAST)
    sinks = Sinks([sink])
    for i in range(12):
        sinks.publish(_change(i))
    sinks.close()
    figures = sinks.summary()["webhook"]
    assert figures["overflowed"] == 7 and figures["pending"] == 5 and figures["delivered"] == 0
    kept = [json.loads(p.read_bytes())["frame"] for p in sorted((tmp_path / "queue").glob("*.json"))]
    assert kept == [7, 8, 9, 10, 11]  # the oldest went first


def test_a_change_dropped_by_an_overflow_while_in_flight_and_then_delivered_is_not_counted_lost(tmp_path):
    queue = WebhookQueue(tmp_path / "queue", limit=2)
    queue.put(b"0")
    number, body = queue.first()  # its POST is in flight
    queue.put(b"1")
    queue.put(b"2")  # the receiver is slow: the queue overflows and drops the oldest, the one in flight
    assert queue.overflowed == 1
    queue.remove(number)  # and then its POST lands
    assert queue.overflowed == 0 and len(queue) == 2 and [queue.first()[1]] == [b"1"]
    queue.close()


def test_webhook_queue_between_its_two_threads_keeps_order_and_count_and_leaves_no_file(tmp_path):
    """The sink's thread puts (some while failing, so written at once), the delivery thread takes, writes the
    waiting ones and removes, as fast as they can, on a queue that overflows: whatever interleaving happens."""
    queue, delivered, done = WebhookQueue(tmp_path / "queue", limit=5), [], threading.Event()

    def deliver() -> None:
        for step in itertools.count():
            # Read before first(): an empty queue ends the thread only if every put came before it was seen empty
            # (read after, the last put could land between the two and be left undelivered).
            finished = done.is_set()
            item = queue.first()
            if item is None:
                if finished:
                    return
                continue
            if step % 3 == 0:  # a POST that failed: what waits is written
                queue.persist()
                continue
            queue.remove(item[0])
            delivered.append(int(item[1]))

    thread = threading.Thread(target=deliver)
    thread.start()
    for i in range(1000):
        queue.put(str(i).encode(), wait=i % 7 == 0)
    done.set()
    thread.join(30)
    assert delivered == sorted(set(delivered)), "in order, each once"
    assert len(delivered) + queue.overflowed == 1000, "each change delivered or counted as dropped, never both"
    assert not list((tmp_path / "queue").glob("*.json")), "a delivered change's file was left behind"
    queue.close()


def test_webhook_secret_file_must_be_0600_and_bad_urls_are_refused(tmp_path, monkeypatch, caplog):
    secret = tmp_path / "secret"
    secret.write_text("abc\n")
    secret.chmod(0o644)
    with pytest.raises(ActionError, match=rf"^--webhook-secret-file {secret}: mode 0644 lets other users read it; a file "
                       rf"holding the webhook's shared secret must be its owner's only \(0600 or 0400\)\. "
                       rf"Run: chmod 600 {secret}$"):
        read_secret(secret)
    secret.chmod(0o600)
    assert read_secret(secret) == b"abc"
    secret.write_bytes(b"\xff\x00k\xfe\n")  # a key from /dev/urandom need not be UTF-8 text
    assert read_secret(secret) == b"\xff\x00k\xfe"
    secret.write_text("abc\n")
    with pytest.raises(ActionError, match=rf"^--webhook-secret-file {secret.parent}: not a regular file"):
        read_secret(secret.parent)
    with pytest.raises(ActionError, match=rf"--webhook-secret-file {secret}x: cannot read it \(No such file or directory\)\. "
                       rf"Write the webhook's shared secret into a file and run: chmod 600 {secret}x$"):
        read_secret(f"{secret}x")
    secret.write_text("\n")
    with pytest.raises(ActionError, match=rf"^--webhook-secret-file {secret} is empty; write the webhook's shared secret"):
        read_secret(secret)
    monkeypatch.setenv("EDGECLF_WEBHOOK_SECRET", "from-env")
    assert read_secret(None) == b"from-env"
    with pytest.raises(ActionError, match="--webhook must be an http:// or https:// URL with a port from 1 to 65535 "
                       "if any; received 'ftp://x'"):
        WebhookSink("ftp://x", None, tmp_path / "queue")
    for url in ("http://h:99999/x", "http://h:abc/x"):  # urllib checks a port only when it is read: at the first POST
        with pytest.raises(ActionError, match=f"received '{url}'"):
            WebhookSink(url, None, tmp_path / "queue")
    monkeypatch.delenv("EDGECLF_WEBHOOK_SECRET")
    with caplog.at_level(logging.WARNING), pytest.raises(ActionError, match="received 'example.org/hook'"):
        action_sinks(["a"], "m", webhook="example.org/hook")
    assert not [r for r in caplog.records if "unsigned" in r.getMessage()], "the bad URL is the one line said"


def test_a_queue_folder_serves_one_camera_at_a_time(tmp_path):
    sink = WebhookSink("http://127.0.0.1:9/hook", None, tmp_path / "queue")
    with pytest.raises(ActionError, match="in use by another edgeclf camera"):
        WebhookSink("http://127.0.0.1:9/hook", None, tmp_path / "queue")
    sink.queue.close()


# --- snapshots -----------------------------------------------------------------------------------------

def test_write_atomically_skips_a_stale_temporary_and_leaves_nothing_when_the_disk_is_full(tmp_path, monkeypatch):
    from edgeclf.runtime import files

    target = tmp_path / "new" / "x.json"
    files.write_atomically(target, b"one")  # the folder is made on the way
    monkeypatch.setattr(files, "_TEMPORARIES", itertools.count(5))
    stale = target.parent / f".x.json.{os.getpid()}.5.tmp"  # left by a killed process that had this pid
    stale.write_bytes(b"half")
    files.write_atomically(target, b"two")
    assert target.read_bytes() == b"two" and stale.read_bytes() == b"half"

    def full(handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device") as error:
        files.write_atomically(target, b"three")
    assert error.value.filename == str(target) and target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == [stale.name, "x.json"]


def test_snapshots_are_jpegs_named_by_time_and_state_and_the_cap_holds(tiny_float32, tmp_path):
    model = Model(tiny_float32)
    dark, bright = _labels(model)
    folder = _folder(tmp_path / "frames", 40, 2, side=96, noise=True)
    out = tmp_path / "snapshots"
    out.mkdir()
    (out / "notes.txt").write_text("not a snapshot: never removed")
    cap_mb = 0.05
    sink = SnapshotSink(out, cap_mb)
    summary = run_stream(model, open_source(str(folder)), StreamOptions(confirm=2), Sinks([sink]))
    figures = summary.sinks["snapshots"]
    assert summary.changes == 40 and figures["written"] == 40 and figures["failed"] == 0
    assert figures["removed_oldest"] > 0 and figures["kept"] + figures["removed_oldest"] == 40
    files = sorted(out.glob("*.jpg"))
    assert sum(f.stat().st_size for f in files) <= cap_mb * 1024 * 1024
    assert len(files) == figures["kept"] and (out / "notes.txt").exists()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file
    frames = [int(f.stem.rsplit("_f", 1)[1]) for f in files]
    assert frames == [79 - 2 * i for i in range(len(files))][::-1]  # the newest kept, in name order
    for f in files:
        assert f.read_bytes()[:2] == b"\xff\xd8"
        image = cv2.imread(str(f))
        assert image is not None and image.shape == (96, 96, 3)
        state = f.stem.split("_")[1]
        assert state == (dark if image.mean() < 128 else bright)


def test_snapshot_names_keep_time_order_within_a_millisecond_and_earlier_names_count_towards_the_cap(tmp_path):
    old = tmp_path / "20231114T221319.999Z_a_f1.jpg"  # as runs before microseconds named them
    old.write_bytes(b"\xff\xd8" + bytes(31_000))
    sink = SnapshotSink(tmp_path, max_mb=0.03)
    image = np.full((32, 32, 3), 128, np.uint8)
    moment = 1_700_000_000.5
    for i, (seconds, state) in enumerate([(moment, "z"), (moment + 0.0002, "a")]):  # 0.2 ms apart: the same ms
        sink.handle(FrameResult({"frame": i}, image, change=StateChange(None, state, 0.9, seconds, i)))
    names = sorted(p.name for p in tmp_path.glob("*.jpg"))
    assert [name.rsplit("_f", 1)[1] for name in names] == ["0.jpg", "1.jpg"]  # name order is the changes' order
    assert not old.exists() and sink.summary()["removed_oldest"] == 1


def test_snapshots_on_a_full_disk_log_one_line_and_the_camera_goes_on(tiny_float32, tmp_path, caplog):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("a full disk needs a small tmpfs, which only root can mount here")
    try:
        model = Model(tiny_float32)
        folder = _folder(tmp_path / "frames", 20, 2, side=96, noise=True)
        sink = SnapshotSink(mount, 100)  # the cap is far above the disk: the disk fills first
        summary = run_stream(model, open_source(str(folder)), StreamOptions(confirm=2), Sinks([sink]))
        figures = summary.sinks["snapshots"]
        assert summary.classified == 40 and summary.changes == 20 and summary.ended == "source ended"
        assert figures["failed"] > 0 and figures["written"] + figures["failed"] == 20
        lines = [r.getMessage() for r in caplog.records if "No space left" in r.getMessage()]
        assert len(lines) == 1 and "the camera goes on" in lines[0]
        assert not list(mount.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_snapshot_options_are_checked(tmp_path):
    with pytest.raises(ActionError, match="--snapshots-max-mb must be > 0; received 0"):
        SnapshotSink(tmp_path, 0)


# --- GPIO ------------------------------------------------------------------------------------------------

def test_gpio_pins_follow_the_state(tiny_float32, tmp_path):
    mock = pytest.importorskip("gpiozero.pins.mock", reason="gpiozero is not installed (pip install gpiozero)")
    factory = mock.MockFactory()
    model = Model(tiny_float32)
    dark, bright = _labels(model)
    sink = GpioSink(parse_gpio([f"{dark}=17", f"{bright}=GPIO27"], model.labels), pin_factory=factory)
    summary = run_stream(model, open_source(str(_folder(tmp_path / "frames", 5, 3))), StreamOptions(confirm=2),
                         Sinks([sink]))
    assert summary.changes == 5  # dark, bright, dark, bright, dark
    assert [s.state for s in factory.pin(17).states] == [False, True, False, True, False, True, False]
    assert [s.state for s in factory.pin(27).states] == [False, True, False, True, False]
    assert summary.sinks["gpio"]["switched"] == 9


def test_gpio_through_the_camera_command_and_its_errors(tiny_float32, tmp_path, monkeypatch):
    pytest.importorskip("gpiozero", reason="gpiozero is not installed (pip install gpiozero)")
    from gpiozero import Device

    model = Model(tiny_float32)
    dark, _ = _labels(model)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)  # made from the environment on first use
    folder = _folder(tmp_path / "frames", 3, 3)
    result = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--quiet",
                                      "--confirm", "2", "--gpio", f"{dark}=17"])
    assert result.exit_code == 0, result.output
    assert _summary(result.output)["sinks"]["gpio"]["switched"] == 3
    assert [s.state for s in Device.pin_factory.pin(17).states] == [False, True, False, True, False]
    result = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--gpio", "door=17"])
    assert result.exit_code != 0 and "'door' is not one of the model's labels" in result.output
    with pytest.raises(ActionError, match="pin 17 is given more than once"):
        parse_gpio([f"{dark}=17", "unknown=17"], model.labels)
    with pytest.raises(ActionError, match="--gpio must be LABEL=PIN; received '17'"):
        parse_gpio(["17"], model.labels)


# --- files in real time ------------------------------------------------------------------------------------

def test_realtime_plays_a_video_at_its_own_rate_as_a_live_source(tmp_path):
    video = _video(tmp_path / "clip.mp4", 30, 20.0)
    source = play_file(open_source(str(video)), realtime=True)
    assert isinstance(source, PlayedFile) and source.fps == pytest.approx(20.0) and source.live
    grabber = FrameGrabber(source)
    started, taken = time.monotonic(), []
    while (frame := grabber.next()) is not None:
        taken.append(frame.index)
        time.sleep(0.2)  # a model four times slower than the clip: the newest frame wins
    elapsed = time.monotonic() - started
    grabber.close()
    assert grabber.error is None and grabber.read == 30
    assert grabber.dropped > 0 and len(taken) + grabber.dropped == 30
    assert taken == sorted(taken) and taken[-1] == 29
    assert elapsed >= 29 / 20.0  # a correctness bound: it cannot have played faster than the clip


def test_realtime_folder_takes_fps_and_the_default_rule(tmp_path, tiny_float32):
    folder = _folder(tmp_path / "frames", 2, 3)
    assert play_file(open_source(str(folder)), realtime=True).fps == 10.0
    assert play_file(open_source(str(folder)), realtime=True, fps=25).fps == 25.0
    assert not isinstance(play_file(open_source(str(folder)), realtime=False), PlayedFile)
    with pytest.raises(SourceError, match=r"--fps must be in \(0, 1000\]; received 0"):
        play_file(open_source(str(folder)), realtime=True, fps=0)
    assert wants_realtime(None, {"serve": "127.0.0.1:8080"}) and wants_realtime(None, {"mqtt": "mqtt://h/p"})
    assert wants_realtime(None, {"webhook": "http://h/"}) and not wants_realtime(None, {"serve": None})
    assert not wants_realtime(False, {"webhook": "http://h/"}) and wants_realtime(True, {})
    assert wants_realtime(None, {"fps": 5.0, "serve": None})  # a rate asked for is a rate played at
    with pytest.raises(ActionError, match=r"--fps 5 is the rate of --realtime playback, and realtime is off \(--no-realtime\)"):
        wants_realtime(False, {"fps": 5.0})
    refused = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--no-realtime",
                                       "--fps", "5"])
    assert refused.exit_code == 2 and "drop one of them" in refused.output and "Traceback" not in refused.output
    summary = run_stream(Model(tiny_float32), play_file(open_source(str(folder)), realtime=True, fps=200),
                         StreamOptions())
    assert summary.classified + summary.dropped == 6 and summary.ended == "source ended"
    paced = run_stream(Model(tiny_float32), play_file(open_source(str(folder)), realtime=True, fps=4), StreamOptions())
    # 250 ms between frames; the wait for a frame's time is the clock, not capture work, and is not counted as it.
    assert paced.classified == 6 and paced.as_dict()["stage_ms"]["capture"]["median"] < 125


def test_loop_repeats_a_video_and_a_folder(tiny_float32, tmp_path):
    model = Model(tiny_float32)
    video = _video(tmp_path / "clip.mp4", 10, 20.0)
    source = play_file(open_source(str(video)), realtime=False, loop=True)
    summary = run_stream(model, source, StreamOptions(max_frames=25))
    assert summary.classified == 25 and source.loops == 2 and summary.ended == "max frames reached"
    folder = _folder(tmp_path / "frames", 2, 4)
    result = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--loop",
                                      "--realtime", "--fps", "200", "--max-frames", "20", "--events-only"])
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["ended"] == "max frames reached" and summary["classified"] == 20
    assert summary["frames_read"] >= 20  # past the folder's 8 images: it started over
    with pytest.raises(SourceError, match="--loop repeats a video file or an image folder; --source rtsp://cam/1 is live"):
        play_file(SimpleNamespace(live=True, name="rtsp://cam/1"), realtime=True, loop=True)


def test_a_webhook_makes_a_folder_play_in_real_time_by_default(tiny_float32, tmp_path):
    folder = _folder(tmp_path / "frames", 2, 4)
    result = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--quiet", "--fps", "20",
                                      "--webhook", f"http://127.0.0.1:{_free_port()}/hook",
                                      "--webhook-queue", str(tmp_path / "queue")])
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["classified"] + summary["dropped"] == 8
    # A correctness bound, not a speed figure: the eighth frame is due 7/20 s after the first, and the
    # loop's clock starts after the reader's first frame (under qemu, tens of ms later): allow one frame.
    assert summary["seconds"] >= 6 / 20
    assert summary["changes"] >= 1 and summary["sinks"]["webhook"]["pending"] == summary["changes"]  # none delivered
