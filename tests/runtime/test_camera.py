"""`edgeclf camera` on video files and image folders the tests make; failing sources; a fake Pi camera."""
from __future__ import annotations

import json
import sys
import time
import types

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.model import Model
from edgeclf.runtime.sinks import CallbackSink, Sinks
from edgeclf.runtime.sources import FrameGrabber, SourceError, open_source
from edgeclf.runtime.stream import StreamOptionError, StreamOptions, run_stream


def make_video(path, frames=40, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, size)
    for i in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, : (i % size[0]) + 1] = 200
        writer.write(frame)
    writer.release()
    return path


def _lines(output: str) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [r for r in rows if "summary" not in r], rows[-1]["summary"]


def test_video_file_every_frame_in_order(tiny_int8, tmp_path):
    video = make_video(tmp_path / "clip.mp4")
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "-k", "2"])
    assert result.exit_code == 0, result.output
    frames, summary = _lines(result.output)
    assert [f["frame"] for f in frames] == list(range(40))  # a file is read in order, nothing dropped
    assert summary["classified"] == 40 and summary["dropped"] == 0 and summary["ended"] == "source ended"
    assert set(frames[0]["ms"]) == {"capture", "preprocess", "invoke", "post"} and len(frames[0]["top_k"]) == 2
    assert set(summary["stage_ms"]) == {"capture", "preprocess", "invoke", "post"} and summary["fps"] > 0


def test_every_smooth_threshold_and_max_frames(tiny_int8, tmp_path):
    video = make_video(tmp_path / "clip.mp4")
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--every", "3",
                                      "--max-frames", "5", "--smooth", "4", "--threshold", "1.0"])
    frames, summary = _lines(result.output)
    assert [f["frame"] for f in frames] == [0, 3, 6, 9, 12]
    assert summary["ended"] == "max frames reached" and summary["skipped"] == 8  # 1, 2, 4, 5, 7, 8, 10, 11
    assert all(f["top_k"][0]["label"] == "unknown" for f in frames)  # no score reaches 1.0


def test_smoothing_averages_scores(tiny_float32, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, value in enumerate([0, 255, 0, 255]):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((16, 16, 3), value, np.uint8))
    model = Model(tiny_float32)
    records = []
    run_stream(model, open_source(str(folder)), StreamOptions(top_k=10, smooth=2),
               Sinks([CallbackSink(lambda result: records.append(result.record))]))
    dark = model.predict(np.zeros((16, 16, 3), np.uint8))[0]
    bright = model.predict(np.full((16, 16, 3), 255, np.uint8))[0]
    second = {t["label"]: t["score"] for t in records[1]["top_k"]}
    expected = (dark + bright) / 2
    assert all(abs(second[label] - expected[int(label)]) < 1e-5 for label in second)


def test_record_writes_annotated_frames(tiny_int8, tmp_path):
    video, out = make_video(tmp_path / "clip.mp4"), tmp_path / "out" / "annotated.mp4"
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--max-frames", "12",
                                      "--record", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = capture.read()
    # White label text (255) stands out of the clip (200 at most) even after mp4v compression.
    assert ok and frame.shape[:2] == (48, 64) and frame[:20, :40].max() > 220


def test_roi_and_center_crop(tiny_int8, tmp_path):
    video = make_video(tmp_path / "clip.mp4")
    runner = CliRunner()
    assert runner.invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--roi", "8,8,32,32",
                               "--max-frames", "2", "-q"]).exit_code == 0
    assert runner.invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--center-crop",
                               "--max-frames", "2", "-q"]).exit_code == 0
    outside = runner.invoke(cli, ["camera", str(tiny_int8), "--source", str(video), "--roi", "40,40,64,64"])
    assert outside.exit_code == 2 and "--roi 40,40,64,64 lies outside the 64x48 frame" in outside.output


@pytest.mark.parametrize("args, message", [
    (["--roi", "1,2,3"], "--roi must be four integers x,y,w,h; received '1,2,3'"),
    (["--every", "0"], "--every must be >= 1; received 0"),
    (["--threshold", "1.5"], "--threshold must be in [0, 1]; received 1.5"),
    (["--serve", "localhost:http"], "--serve must be HOST:PORT"),
    (["--source", "no/such/video.mp4"], "--source no/such/video.mp4: no such file or folder"),
])
def test_bad_options(tiny_int8, args, message):
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_truncated_video_ends_cleanly_with_a_summary(tiny_int8, tmp_path):
    video = make_video(tmp_path / "clip.mp4", frames=60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    try:
        source = open_source(str(cut))
    except SourceError as exc:  # some OpenCV builds refuse a cut file outright: also a clear ending
        assert "cannot open video source" in str(exc)
        return
    summary = run_stream(Model(tiny_int8), source, StreamOptions())
    assert summary.ended in ("source ended",) or summary.ended.startswith("source failed")
    assert 0 <= summary.classified < 60


class FlakySource:
    """A live source whose camera dies after five frames."""

    name, live = "flaky", True

    def __init__(self):
        self.count = 0

    def read(self):
        self.count += 1
        if self.count > 5:
            raise OSError("camera unplugged")
        return np.full((48, 64, 3), 100, np.uint8)

    def close(self):
        pass


def test_a_source_that_raises_ends_the_run_with_a_message(tiny_int8, monkeypatch):
    import edgeclf.runtime.sources as sources

    monkeypatch.setattr(sources, "MAX_READ_FAILURES", 4)  # the default retries for about 9 s
    summary = run_stream(Model(tiny_int8), FlakySource(), StreamOptions())
    assert summary.ended == "source failed: OSError: camera unplugged (4 reads in a row failed)"
    assert 1 <= summary.classified <= 5 and summary.as_dict()["fps"] > 0


class GlitchySource(FlakySource):
    """A live source whose every seventh read fails, alternately raising and returning nothing."""

    def read(self):
        self.count += 1
        time.sleep(0.002)  # a camera delivers frames at its own pace
        if self.count % 7 == 0:
            if self.count % 14 == 0:
                raise OSError("USB reset")
            return None
        return np.full((48, 64, 3), 100, np.uint8)


def test_a_live_source_with_intermittent_errors_keeps_running(tiny_int8, monkeypatch):
    import edgeclf.runtime.sources as sources

    monkeypatch.setattr(sources, "MAX_READ_FAILURES", 3)
    summary = run_stream(Model(tiny_int8), GlitchySource(), StreamOptions(max_frames=80))
    assert summary.ended == "max frames reached" and summary.classified == 80
    assert summary.read_errors >= 10 and summary.as_dict()["read_errors"] == summary.read_errors


def test_live_sources_keep_only_the_newest_frame():
    class Fast(FlakySource):
        def read(self):
            self.count += 1
            return None if self.count > 200 else np.full((8, 8, 3), self.count % 256, np.uint8)

    grabber = FrameGrabber(Fast())
    grabber._thread.join(timeout=10)  # the model is busy meanwhile: 200 frames arrive, none is queued
    frame = grabber.next()
    grabber.close()
    assert grabber.read == 200 and frame.index == 199 and grabber.dropped == 199
    assert grabber.next(timeout=0.1) is None


@pytest.fixture()
def fake_picamera2(monkeypatch):
    """A stand-in for the picamera2 package (not installable off a Pi): it returns BGR frames like the real one."""
    fake = types.ModuleType("picamera2")

    class Picamera2:
        configured: list = []

        def __init__(self):
            self.frames = 0

        def create_video_configuration(self, main, lores=None):
            assert main["format"] == "RGB888"
            return {"main": main, "lores": lores}

        def configure(self, config):
            self.size, self.lores = config["main"]["size"], config["lores"]
            Picamera2.configured.append(tuple(self.size))

        def start(self):
            pass

        def capture_array(self, stream):
            self.frames += 1
            if stream == "lores":  # YUV420 at the model's size (see tests/runtime/standins for a fuller stand-in)
                width, height = self.lores["size"]
                return cv2.cvtColor(np.full((height, width, 3), (0, 0, 255), np.uint8), cv2.COLOR_RGB2YUV_I420)
            frame = np.zeros((self.size[1], self.size[0], 3), np.uint8)
            frame[..., 0] = 255  # blue in picamera2's B, G, R memory order
            return frame

        def stop(self):
            pass

        def close(self):
            pass

    fake.Picamera2 = Picamera2
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    return fake


def test_picamera_source_with_a_fake_picamera2(tiny_int8, fake_picamera2):
    source = open_source("picamera")
    frame = source.read()
    assert frame[0, 0].tolist() == [0, 0, 255] and frame.shape == (480, 640, 3)  # RGB, 640x480 by default
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", "picamera", "--max-frames", "3"])
    frames, summary = _lines(result.output)
    assert len(frames) == 3 and summary["ended"] == "max frames reached"


def test_resolution_sets_the_capture_size(tiny_int8, fake_picamera2):
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", "picamera", "--resolution", "320x240",
                                      "--max-frames", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert fake_picamera2.Picamera2.configured[-1] == (320, 240)


@pytest.mark.parametrize("value, message", [("640*480", "must be WIDTHxHEIGHT"), ("0x240", "must be WIDTHxHEIGHT"),
                                            ("320x240", "plays at its own size")])
def test_resolution_errors_name_the_value_and_fix(tiny_int8, digits_val, value, message):
    folder = next(p for p in digits_val.iterdir() if p.is_dir())
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(folder), "--resolution", value])
    assert result.exit_code == 2 and message in result.output and "--resolution" in result.output


def test_picamera_missing_says_how_to_install(tiny_int8, monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", "picamera"])
    assert result.exit_code == 2 and "sudo apt install python3-picamera2" in result.output


def test_options_validate_on_their_own():
    with pytest.raises(StreamOptionError, match="--roi and --center-crop exclude each other"):
        StreamOptions(roi=(0, 0, 4, 4), center_crop=True)


@pytest.mark.parametrize("display", [None, ":97"])
def test_display_without_a_usable_display_is_one_line_never_an_abort(tiny_int8, digits_val, monkeypatch, display):
    """No display at all, or one that cannot be opened: OpenCV's GTK build aborts the process in
    cv2.namedWindow there (Debian's python3-opencv over SSH), so the window is probed in a child."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", display)  # no X server listens there
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(digits_val / "3"), "--display"])
    assert result.exit_code == 2, result.output
    assert "--display needs OpenCV with GUI support" in result.output and "--serve" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert ("$DISPLAY and $WAYLAND_DISPLAY are unset" in result.output) == (display is None)