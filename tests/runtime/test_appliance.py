"""The camera as an appliance (issue 30): a config file, a systemd service with sd_notify and a watchdog,
and frames at the model's size from the Pi camera (a stand-in picamera2), a webcam's modes and JPEG folders."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime import service
from edgeclf.runtime.camera_config import config_params
from edgeclf.runtime.model import Model
from edgeclf.runtime.sdnotify import SystemdSink, watchdog_interval
from edgeclf.runtime.sinks import Sinks
from edgeclf.runtime.sources import PicameraSource, lores_size, smallest_mode, v4l2_modes
from edgeclf.runtime.stream import StreamOptions, run_stream
from edgeclf.runtime.webauth import WebAuth, is_loopback
from tests.mjpeg import MjpegCamera

STANDINS = Path(__file__).parent / "standins"
EDGECLF = Path(sys.executable).parent / "edgeclf"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze not installed (Debian package systemd)")


def _folder(tmp_path: Path, count: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(count):
        image = np.full((size[1], size[0], 3), 30 * i % 255, np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


def _summary(output: str) -> dict:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"summary"')][-1]["summary"]


# --- camera --config -------------------------------------------------------------------------------------------

def test_every_camera_option_is_a_config_key():
    camera = cli.commands["camera"]
    keys = config_params(camera)
    flags = {p.name for p in camera.params if p.expose_value} - {"config_file", "print_config"}
    assert {p.name for p in keys.values()} == flags  # no table: options added to the command are keys too
    assert {"model", "source", "threads", "top_k", "threshold", "smooth", "serve", "serve_viewers"} <= set(keys)


def test_config_file_flags_override_and_print_config(tiny_int8, tmp_path):
    folder = _folder(tmp_path)
    config = tmp_path / "camera.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_int8), "source": str(folder), "top_k": 2, "max_frames": 4,
                                      "quiet": True}))
    printed = CliRunner().invoke(cli, ["camera", "--config", str(config), "--top-k", "1", "--print-config"])
    assert printed.exit_code == 0, printed.output
    effective = yaml.safe_load(printed.output)
    assert effective["top_k"] == 1 and effective["max_frames"] == 4 and effective["source"] == str(folder)
    assert effective["model"] == str(tiny_int8) and effective["confirm"] == 3  # defaults are written out too
    # The printed configuration is itself a valid config that runs.
    again = tmp_path / "effective.yaml"
    again.write_text(printed.output)
    result = CliRunner().invoke(cli, ["camera", "--config", str(again)])
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["classified"] == 4 and summary["ended"] == "max frames reached"
    assert not [line for line in result.output.splitlines() if line.startswith('{"frame"')]  # quiet: true applied


@pytest.mark.parametrize("content, message", [
    ("top_kk: 2\n", "unknown key 'top_kk'. Did you mean 'top_k'?"),
    ("serve_viewer: 2\n", "Did you mean 'serve_viewers'?"),
    ("top_k: many\n", "top_k: Invalid value for '--top-k'"),
    ("- a list\n", "expected a mapping of camera options"),
    ("top_k: [1\n", "not valid YAML"),
])
def test_bad_config_is_one_clear_line(tiny_int8, tmp_path, content, message):
    config = tmp_path / "camera.yaml"
    config.write_text(content)
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--config", str(config), "--max-frames", "1"])
    assert result.exit_code == 2 and message in result.output
    assert str(config) in result.output and '"summary"' not in result.output  # nothing ran


# --- edgeclf service -------------------------------------------------------------------------------------------

def _service_config(tmp_path: Path, model: Path, name: str = "camera", **extra) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"model": str(model), "source": "0", "events_only": True, **extra}))
    return config


def _install(tmp_path: Path, name: str, config: Path, *more: str):
    return CliRunner().invoke(cli, ["service", "install", name, "--config", str(config), "--unit-dir",
                                    str(tmp_path / "units"), "--state-dir", str(tmp_path / "state"), *more])


def _verify(unit: Path) -> list[str]:
    """systemd-analyze verify's complaints about `unit` (it exits 0 on unknown keys and bad values, so the
    messages are what tells)."""
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()] + (
        [f"exit {done.returncode}"] if done.returncode else [])


def test_install_writes_a_notify_unit_with_a_watchdog(tiny_int8, tmp_path):
    config = _service_config(tmp_path, tiny_int8)
    result = _install(tmp_path, "frontdoor", config, "--watchdog-sec", "20")
    assert result.exit_code == 0, result.output
    unit = tmp_path / "units" / "edgeclf-frontdoor.service"
    text = unit.read_text()
    for line in ("Type=notify", "WatchdogSec=20", "Restart=on-failure", "After=network-online.target",
                 "Wants=network-online.target", "StandardOutput=journal", "WantedBy=multi-user.target",
                 f"ExecStart={EDGECLF} camera --config {config}"):
        assert line in text.splitlines(), line
    assert "LoadCredential" not in text and "User=" not in text
    record = json.loads((tmp_path / "state" / "frontdoor.json").read_text())
    assert record["unit"] == str(unit)


@needs_systemd_analyze
def test_generated_units_pass_systemd_analyze_verify(tiny_int8, tmp_path):
    password = tmp_path / "web.password"
    password.write_text("correct horse battery\n")
    password.chmod(0o600)
    plain = _service_config(tmp_path, tiny_int8, "plain")
    served = _service_config(tmp_path, tiny_int8, "served", serve="0.0.0.0:8080")
    assert _install(tmp_path, "plain", plain).exit_code == 0
    result = _install(tmp_path, "served", served, "--password-file", str(password), "--user", "root")
    assert result.exit_code == 0, result.output
    units = tmp_path / "units"
    text = (units / "edgeclf-served.service").read_text()
    assert f"LoadCredential=web-password:{password}" in text and "--serve-password-file %d/web-password" in text
    assert _verify(units / "edgeclf-plain.service") == []
    assert _verify(units / "edgeclf-served.service") == []
    # The check can fail: a typo in a key and in a value are both reported.
    broken = units / "edgeclf-broken.service"
    broken.write_text(text.replace("Type=notify", "Type=notfy").replace("WatchdogSec=", "WatchdogSecs="))
    complaints = "\n".join(_verify(broken))
    assert "notfy" in complaints and "WatchdogSecs" in complaints


def test_two_named_services_side_by_side_and_uninstall_removes_exactly_one(tiny_int8, tmp_path):
    garden = _service_config(tmp_path, tiny_int8, "garden")
    door = _service_config(tmp_path, tiny_int8, "door", source="1")
    assert _install(tmp_path, "garden", garden).exit_code == 0
    assert _install(tmp_path, "door", door).exit_code == 0
    units = tmp_path / "units"
    assert sorted(p.name for p in units.iterdir()) == ["edgeclf-door.service", "edgeclf-garden.service"]
    texts = [(units / f"edgeclf-{n}.service").read_text() for n in ("garden", "door")]
    assert "SyslogIdentifier=edgeclf-garden" in texts[0] and "SyslogIdentifier=edgeclf-door" in texts[1]
    if SYSTEMD_ANALYZE:
        assert _verify(units / "edgeclf-garden.service") == [] and _verify(units / "edgeclf-door.service") == []
    result = CliRunner().invoke(cli, ["service", "uninstall", "garden", "--unit-dir", str(units),
                                      "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in units.iterdir()] == ["edgeclf-door.service"]
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["door.json"]


def test_uninstall_refuses_a_unit_edgeclf_did_not_write_or_that_changed(tiny_int8, tmp_path):
    units, state = tmp_path / "units", tmp_path / "state"
    units.mkdir()
    foreign = units / "edgeclf-other.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    args = ["--unit-dir", str(units), "--state-dir", str(state)]
    result = CliRunner().invoke(cli, ["service", "uninstall", "other", *args])
    assert result.exit_code == 2 and "no record of installing edgeclf-other.service" in result.output
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    # install does not overwrite it either
    result = _install(tmp_path, "other", _service_config(tmp_path, tiny_int8))
    assert result.exit_code == 2 and "edgeclf did not write it" in result.output
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    # a unit edgeclf wrote, edited by hand since: kept
    assert _install(tmp_path, "mine", _service_config(tmp_path, tiny_int8)).exit_code == 0
    mine = units / "edgeclf-mine.service"
    mine.write_text(mine.read_text() + "Nice=5\n")
    result = CliRunner().invoke(cli, ["service", "uninstall", "mine", *args])
    assert result.exit_code == 2 and "changed since" in result.output and mine.exists()


@pytest.mark.parametrize("extra, more, message", [
    ({"serve": "0.0.0.0:8080"}, (), "needs a password"),
    ({"display": True}, (), "needs a screen"),
    ({"top_kk": 3}, (), "Did you mean 'top_k'?"),
    ({"serve": "0.0.0.0:8080"}, ("--password-file", "PASSWORD_0644"), "chmod 600"),
    ({}, ("--watchdog-sec", "1"), "--watchdog-sec must be >= 2"),
])
def test_install_refuses_what_would_not_run(tiny_int8, tmp_path, extra, more, message):
    password = tmp_path / "pw"
    password.write_text("long enough password")
    password.chmod(0o644)
    config = _service_config(tmp_path, tiny_int8, **extra)
    result = _install(tmp_path, "cam", config, *[str(password) if m == "PASSWORD_0644" else m for m in more])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "units").exists()


def test_install_refuses_a_config_without_a_model(tmp_path):
    config = tmp_path / "camera.yaml"
    config.write_text("source: '0'\n")
    result = _install(tmp_path, "cam", config)
    assert result.exit_code == 2 and "no `model:` key" in result.output
    bad = CliRunner().invoke(cli, ["service", "install", "Bad Name", "--config", str(config)])
    assert bad.exit_code == 2 and "service name must be" in bad.output


def test_status_reads_the_last_summary_from_the_journal_text():
    journal = '{"frame": 1}\n{"summary": {"classified": 5, "ended": "interrupted"}}\nnoise\n'
    assert service.last_summary(journal) == {"classified": 5, "ended": "interrupted"}
    assert service.last_summary("nothing\n") is None
    result = CliRunner().invoke(cli, ["service", "status", "nosuch", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["unit"] == "edgeclf-nosuch.service"


# --- sd_notify with a real `edgeclf camera` process --------------------------------------------------------------

class NotifyListener:
    """systemd's side of sd_notify: a datagram socket that records each message with the time it came."""

    def __init__(self, path: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append((time.monotonic(), self.socket.recv(4096).decode()))
            except socket.timeout:
                pass

    def wait_for(self, text: str, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if any(text in m for _, m in self.messages):
                return True
            self.collect(0.2)
        return False

    def pings(self, since: float = 0.0) -> int:
        return sum(1 for t, m in self.messages if t >= since and "WATCHDOG=1" in m.splitlines())


def test_camera_speaks_sd_notify_and_stops_pinging_when_the_source_stalls(tiny_int8, tmp_path):
    camera = MjpegCamera()
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000",
           "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([str(EDGECLF), "camera", str(tiny_int8), "--source", camera.url, "--events-only"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.wait_for("READY=1", 60), listener.messages
        listener.collect(1.5)
        assert listener.pings() >= 2  # pinged while frames were classified (every 0.2 s at most)
        statuses = [m for _, m in listener.messages if "STATUS=classifying at" in m]
        assert statuses and " FPS; state " in statuses[-1]
        ready = [m for _, m in listener.messages if "READY=1" in m.splitlines()]
        assert len(ready) == 1
        camera.stalled.set()
        # Frames already read are classified (and pinged for) first; then the pings must stop while the
        # process lives on (the capture thread waits for the camera).
        quiet_since = None
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            mark = time.monotonic()
            listener.collect(1.2)
            if listener.pings(since=mark) == 0:
                quiet_since = mark
                break
        assert quiet_since is not None, "pings went on while the source delivered nothing"
        assert process.poll() is None  # stopped pinging because no frame came, not because it died
        camera.stalled.clear()
        resumed = time.monotonic()
        while listener.pings(since=resumed) == 0 and time.monotonic() < resumed + 5:
            listener.collect(0.2)
        assert listener.pings(since=resumed) >= 1  # frames again: pings again
        # systemctl stop; keep reading meanwhile, as systemd does (a unix datagram socket queues only 10
        # messages, and under qemu the shutdown takes seconds of pings)
        def read_until_exit() -> None:
            while process.poll() is None:
                listener.collect(0.2)

        reader = threading.Thread(target=read_until_exit, daemon=True)
        process.send_signal(signal.SIGTERM)
        reader.start()
        out, err = process.communicate(timeout=30)
        reader.join(5)
        listener.collect(0.3)
    finally:
        if process.poll() is None:
            process.kill()
        camera.close()
    assert any("STOPPING=1" in m.splitlines() for _, m in listener.messages)
    summary = _summary(out)
    assert summary["ended"] == "interrupted" and summary["sinks"]["systemd"]["ready"] is True
    assert process.returncode == 0, err


def test_systemd_sink_pings_while_paused_and_follows_watchdog_pid(tiny_int8, tmp_path):
    listener = NotifyListener(tmp_path / "n.sock")
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another pid
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    sink = SystemdSink.from_environment({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "100000"})
    assert SystemdSink.from_environment({}) is None
    sinks = Sinks([sink])
    sinks.paused.set()  # as MQTT's set topic does: frames are read, none classified
    listener.collect(0.6)
    sinks.close()
    listener.collect(0.2)
    paused = [m for _, m in listener.messages if "WATCHDOG=1" in m and "paused" in m]
    assert len(paused) >= 2 and "READY=1" not in "".join(m for _, m in listener.messages)
    assert listener.messages[-1][1].startswith("STOPPING=1")


# --- web view credentials ------------------------------------------------------------------------------------------

def test_webauth_rules(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("camera.local")
    assert not WebAuth.for_serving("127.0.0.1", environ={}).required
    with pytest.raises(ValueError, match="needs a password.*--serve-open"):
        WebAuth.for_serving("0.0.0.0", environ={})
    assert not WebAuth.for_serving("0.0.0.0", open_=True, environ={}).required
    auth = WebAuth.for_serving("0.0.0.0", environ={"EDGECLF_WEB_PASSWORD": "s3cret-pass"})
    import base64
    basic = "Basic " + base64.b64encode(b"anyone:s3cret-pass").decode()
    assert auth.check({"Authorization": basic}) and auth.check({"Authorization": "Bearer s3cret-pass"})
    for wrong in ("", "Basic " + base64.b64encode(b"anyone:s3cret-pasS").decode(), "Basic !!!", "Bearer s3cret",
                  "Digest s3cret-pass", basic[:-2]):
        assert not auth.check({"Authorization": wrong}), wrong
    loose = tmp_path / "pw"
    loose.write_text("s3cret-pass\n")
    loose.chmod(0o640)
    with pytest.raises(ValueError, match=f"^--serve-password-file {loose}: mode 0640 lets other users read it; a file "
                       f"holding the web view's password must be its owner's only \\(0600 or 0400\\)\\. "
                       f"Run: chmod 600 {loose}$"):
        WebAuth.for_serving("0.0.0.0", password_file=loose, environ={})
    loose.chmod(0o600)
    assert WebAuth.for_serving("0.0.0.0", password_file=loose, environ={}).check({"Authorization": basic})
    with pytest.raises(ValueError, match="at least 8 characters"):
        WebAuth("short")


def test_cli_refuses_an_open_network_view_without_password(tiny_int8, tmp_path):
    folder = _folder(tmp_path)
    env = {"EDGECLF_WEB_PASSWORD": ""}
    result = CliRunner(env=env).invoke(cli, ["camera", str(tiny_int8), "--source", str(folder), "--serve",
                                             "0.0.0.0:0", "-q"])
    assert result.exit_code == 2 and "needs a password" in result.output and '"summary"' not in result.output
    result = CliRunner(env=env).invoke(cli, ["camera", str(tiny_int8), "--source", str(folder), "--serve",
                                             "127.0.0.1:0", "--serve-viewers", "0", "-q"])
    assert result.exit_code == 2 and "--serve-viewers must be >= 1" in result.output


# --- frames at the model's size ------------------------------------------------------------------------------------

@pytest.fixture()
def picamera2_standin(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in [m for m in sys.modules if m.startswith("picamera2")]:
        monkeypatch.delitem(sys.modules, name)
    import picamera2

    picamera2.instances.clear()
    yield picamera2
    for name in [m for m in sys.modules if m.startswith("picamera2")]:
        monkeypatch.delitem(sys.modules, name)


def test_lores_sizes_are_even_and_within_main():
    assert lores_size((96, 96), (640, 480)) == (96, 96)
    assert lores_size((75, 99), (640, 480)) == (100, 76)
    assert lores_size((600, 600), (641, 481)) == (600, 480)  # capped to main, kept even


def test_picamera_lores_is_the_model_frame_in_rgb(picamera2_standin):
    source = PicameraSource((640, 480), model_size=(96, 96))
    camera = picamera2_standin.instances[-1]
    assert camera.config["lores"] == {"format": "YUV420", "size": (96, 96)}  # YUV on a Pi 4
    captured = source.read()
    assert captured.model.shape == (96, 96, 3) and captured.view.shape == (480, 640, 3)
    # The lores frame is what the CPU would have made of the main frame (within YUV420's chroma loss),
    # in RGB order: the red block is red.
    expected = cv2.resize(captured.view, (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(captured.model.astype(int) - expected.astype(int)).mean() < 12
    red = captured.model[20, 20]
    assert red[0] > 180 and red[1] < 90 and red[2] < 90
    # Nobody shows frames: only lores is captured; the view is the small frame.
    source.keep_main = False
    camera.captured.clear()
    small = source.read()
    assert camera.captured == ["lores"] and small.view.shape == (96, 96, 3)
    source.close()


def test_picamera_pi5_lores_in_rgb(picamera2_standin, monkeypatch):
    monkeypatch.setenv("PICAMERA2_STANDIN_PLATFORM", "PISP")
    source = PicameraSource((640, 480), model_size=(96, 128))
    assert picamera2_standin.instances[-1].config["lores"] == {"format": "RGB888", "size": (128, 96)}
    frame = source.read().model
    assert frame.shape == (96, 128, 3) and frame[20, 20][0] > 180 and frame[20, 20][2] < 90
    source.close()


def test_picamera_roi_is_the_isp_scaler_crop(picamera2_standin):
    from picamera2 import SENSOR, scene

    # The green block of the scene, in main-stream pixels (main shows the whole 2028x1520 sensor at 640x480).
    sx, sy = SENSOR[0] / 640, SENSOR[1] / 480
    roi = (int(1300 / sx) + 4, int(200 / sy) + 4, 100, 80)
    source = PicameraSource((640, 480), model_size=(32, 32), roi=roi)
    camera = picamera2_standin.instances[-1]
    assert camera.crop == source.scaler_crop and camera.crop[2] == round(100 * sx)
    frame = source.read().model
    x, y, w, h = camera.crop
    expected = cv2.resize(scene()[y:y + h, x:x + w], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.astype(int) - expected.astype(int)).mean() < 8
    assert frame[16, 16][1] > 150 and frame[16, 16][0] < 100  # green: the region, not the whole frame
    source.close()
    with pytest.raises(Exception, match="lies outside the 640x480 frame"):
        PicameraSource((640, 480), model_size=(32, 32), roi=(600, 400, 100, 100))


def test_camera_command_runs_on_the_picamera_standin(tiny_int8, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STANDINS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([str(EDGECLF), "camera", str(tiny_int8), "--source", "picamera", "--max-frames", "5",
                           "--roi", "200,40,300,300", "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = _summary(done.stdout)
    assert summary["classified"] == 5 and summary["source"] == "picamera" and summary["ended"] == "max frames reached"


def test_stream_uses_the_lores_frame_without_crop_or_resize(tiny_int8, picamera2_standin):
    model = Model(tiny_int8)
    source = PicameraSource((640, 480), model_size=model.input_size, roi=(100, 100, 200, 200))
    seen = []
    from edgeclf.runtime.sinks import CallbackSink

    sinks = Sinks([CallbackSink(lambda r: seen.append(r.image.shape), wants_frames=True)])
    summary = run_stream(model, source, StreamOptions(max_frames=3, roi=(100, 100, 200, 200)), sinks)
    assert summary.classified == 3 and set(seen) == {(480, 640, 3)}  # the view is main, the model had lores
    camera = picamera2_standin.instances[-1]
    assert "main" in camera.captured and "lores" in camera.captured


def test_webcam_smallest_covering_mode():
    modes = [(1920, 1080), (1280, 720), (640, 480), (320, 240), (160, 120)]
    assert smallest_mode(modes, (96, 96)) == (160, 120)
    assert smallest_mode(modes, (224, 224)) == (320, 240)
    assert smallest_mode(modes, (1200, 1200)) == (1920, 1080)  # none covers it: the largest
    assert smallest_mode([], (96, 96)) is None
    assert v4l2_modes(987) == []  # no such device: nothing asked, the camera's own mode is kept


def test_large_jpeg_folder_is_decoded_reduced(tiny_int8, tmp_path):
    from edgeclf.runtime.sources import open_source

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.full((400, 600, 3), 128, np.uint8))
    frame = open_source(str(folder), at_least=(16, 16)).read()
    assert frame.shape == (50, 75, 3)  # 1/8 scale: still at least the model's 16x16
    assert open_source(str(folder)).read().shape == (400, 600, 3)


@pytest.mark.parametrize("command", [["service", "install"], ["service", "uninstall"], ["service", "status"]])
def test_service_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and f"Usage: cli {' '.join(command)} [OPTIONS] NAME" in result.output.replace(
        "edgeclf", "cli")
