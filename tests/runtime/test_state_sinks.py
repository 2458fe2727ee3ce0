"""The debounced state and the sink interface: changes fire once, slow sinks drop and never slow the loop."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.model import Model
from edgeclf.runtime.sinks import CallbackSink, Feed, FrameResult, Sink, Sinks
from edgeclf.runtime.sources import open_source
from edgeclf.runtime.state import Debouncer
from edgeclf.runtime.stream import StreamOptionError, StreamOptions, run_stream


def _feed(debouncer: Debouncer, labels: str, step: float = 0.1) -> list:
    return [debouncer.update(label, 0.9, i * step, i) for i, label in enumerate(labels)]


def test_state_changes_after_confirm_frames_in_a_row():
    changes = [c for c in _feed(Debouncer(confirm=3), "aaabababbbbaa") if c]
    assert [(c.previous, c.state, c.frame) for c in changes] == [(None, "a", 2), ("a", "b", 9)]


def test_flicker_never_changes_state_and_same_label_is_no_change():
    debouncer = Debouncer(confirm=2)
    changes = [c for c in _feed(debouncer, "aabababababaaaa") if c]
    assert [c.state for c in changes] == ["a"]
    assert debouncer.current.label == "a" and debouncer.current.since == pytest.approx(0.1)


def test_hold_uses_time_not_frames():
    debouncer = Debouncer(confirm=1, hold=0.5)
    changes = [c for c in _feed(debouncer, "aaaaaabbbbbb", step=0.1) if c]
    assert [(c.state, c.frame) for c in changes] == [("a", 5), ("b", 11)]


@pytest.mark.parametrize("kwargs, message", [({"confirm": 0}, "--confirm must be >= 1"),
                                             ({"hold": -1.0}, "--hold must be >= 0")])
def test_bad_debounce_options(kwargs, message):
    with pytest.raises(StreamOptionError, match=message):
        StreamOptions(**kwargs)


def _folder(tmp_path, values):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, value in enumerate(values):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((16, 16, 3), value, np.uint8))
    return folder


def test_stream_marks_change_frames_and_changes_only_sinks_see_only_them(tiny_float32, tmp_path):
    model = Model(tiny_float32)
    dark, bright = (model.labels[int(np.argmax(model.predict(np.full((16, 16, 3), v, np.uint8))[0]))] for v in (0, 255))
    assert dark != bright, "the fixture model must tell a black frame from a white one"
    folder = _folder(tmp_path, [0] * 5 + [255] * 5 + [0, 255] * 3)
    frames, changes = [], []
    # Every frame's record: the loop waits for this sink on a file (a per-frame sink that falls 8 frames behind, as on
    # a busy machine, otherwise drops the oldest, and a change frame's record with it).
    sinks = Sinks([CallbackSink(lambda r: frames.append(r.record), name="all", keeps_every_file_frame=True),
                   CallbackSink(lambda r: changes.append(r.change), name="changes", changes_only=True)])
    summary = run_stream(model, open_source(str(folder)), StreamOptions(confirm=3), sinks)
    assert [(c.previous, c.state, c.frame) for c in changes] == [(None, dark, 2), (dark, bright, 7)]
    assert [f["frame"] for f in frames if "state" in f] == [2, 7]
    assert summary.changes == 2 and summary.state["label"] == bright
    assert summary.sinks["changes"] == {"handled": 2, "dropped": 0, "errors": 0}


class Sampler(Sink):
    """A periodic sink: never handed a result, it takes the frames' records in batches."""

    name = "sampler"

    def __init__(self, period: float) -> None:
        self.period, self.ticks = period, []

    def handle(self, result: FrameResult) -> None:
        raise AssertionError("a periodic sink is never handed a result")

    def tick(self, records: list[dict], frames: int) -> None:
        self.ticks.append(([r["frame"] for r in records], frames))


def test_a_periodic_sink_takes_every_record_in_batches_and_is_never_handed_a_frame(tiny_float32, tmp_path):
    folder = _folder(tmp_path, [0] * 5 + [255] * 5 + [0, 255] * 3)
    sampler = Sampler(period=3600.0)  # so the one tick is the last one, after the last frame
    summary = run_stream(Model(tiny_float32), open_source(str(folder)), StreamOptions(confirm=3), Sinks([sampler]))
    assert sampler.ticks == [(list(range(16)), 16)]
    assert summary.sinks["sampler"] == {"handled": 16, "dropped": 0, "errors": 0}


def test_a_full_feed_keeps_the_newest_records_and_counts_the_rest():
    feed = Feed(maxlen=3)
    for i in range(5):
        feed.append({"frame": i})
    assert feed.take() == ([{"frame": 2}, {"frame": 3}, {"frame": 4}], 5, 2)
    feed.append({"frame": 5})
    assert feed.take() == ([{"frame": 5}], 6, 0) and feed.take() == ([], 6, 0)


class Stuck(Sink):
    """A sink that hangs until released, as a dead webhook or broker would."""

    name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()

    def handle(self, result: FrameResult) -> None:
        self.release.wait(30)


class Failing(Sink):
    name = "failing"

    def handle(self, result: FrameResult) -> None:
        raise OSError("disk full")


def test_a_stuck_sink_drops_and_counts_and_a_failing_one_never_stops_the_loop(tiny_int8, tmp_path):
    folder = _folder(tmp_path, [0, 255] * 50)
    stuck = Stuck()
    # Stuck until half the frames are classified, however slow the machine (an emulated one), then it catches up.
    release = CallbackSink(lambda r: r.record["frame"] >= 50 and stuck.release.set(), "release")
    sinks = Sinks([stuck, Failing(), release])
    summary = run_stream(Model(tiny_int8), open_source(str(folder)), StreamOptions(), sinks)
    stuck.release.set()
    assert summary.classified == 100 and summary.ended == "source ended"
    figures = summary.sinks
    assert figures["stuck"]["dropped"] > 0 and figures["stuck"]["handled"] + figures["stuck"]["dropped"] <= 100
    assert figures["failing"]["errors"] == 100 - figures["failing"]["dropped"]
    assert figures["failing"]["last_error"] == "OSError: disk full"


def test_sink_names_must_be_unique():
    with pytest.raises(ValueError, match="received a twice"):
        Sinks([CallbackSink(print, name="a"), CallbackSink(print, name="a")])


def test_camera_events_only_prints_only_changes(tiny_float32, tmp_path):
    folder = _folder(tmp_path, [0] * 5 + [255] * 5)
    result = CliRunner().invoke(cli, ["camera", str(tiny_float32), "--source", str(folder), "--events-only",
                                      "--confirm", "2"])
    assert result.exit_code == 0, result.output
    import json

    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    events, summary = rows[:-1], rows[-1]["summary"]
    assert [e["state"]["frame"] for e in events] == [1, 6] and events[1]["state"]["previous"] == events[0]["state"]["state"]
    assert summary["changes"] == 2 and summary["classified"] == 10


def test_a_callback_that_keeps_every_file_frame_is_waited_for(tiny_float32, tmp_path):
    """A script analysing a clip asks for every frame: the loop waits for its slow callback instead of dropping."""
    folder = _folder(tmp_path, [0, 255] * 10)
    seen = []
    slow = CallbackSink(lambda r: (time.sleep(0.05), seen.append(r.record["frame"])), keeps_every_file_frame=True)
    summary = run_stream(Model(tiny_float32), open_source(str(folder)), StreamOptions(), Sinks([slow]))
    assert seen == list(range(20)) and summary.sinks["callback"]["dropped"] == 0
