"""The camera loop's threads: the model runs in a thread of its own, so that post-processing and the sinks of one
frame overlap the next invoke, and what fails there is raised in the caller's thread."""
from __future__ import annotations

import threading

import pytest

from edgeclf.runtime.model import Model, ModelError
from edgeclf.runtime.sinks import FrameResult, Sink, Sinks
from edgeclf.runtime.sources import open_source
from edgeclf.runtime.stream import StreamOptions, run_stream
from tests.runtime.test_camera import make_video

FRAMES = 4


class WatchedModel(Model):
    """The real tiny model; each invoke notes its thread and sets an event when it starts."""

    def __init__(self, path, fail_at: int | None = None) -> None:
        super().__init__(path)
        self.started = [threading.Event() for _ in range(FRAMES + 2)]
        self.threads: list[str] = []
        self.fail_at = fail_at

    def invoke(self, tensor):
        index = len(self.threads)
        self.threads.append(threading.current_thread().name)
        self.started[index].set()
        if index == self.fail_at:
            raise ModelError("the interpreter failed running this model (injected)")
        return super().invoke(tensor)


class WaitsForTheNextInvoke(Sink):
    """Runs on the loop's thread (inline) and, for each frame but the last, waits for the model to start the
    next one: it can only see that start if the next invoke does not wait for the loop."""

    name, inline = "waits", True

    def __init__(self, model: WatchedModel) -> None:
        self.model, self.overlapped = model, []

    def handle(self, result: FrameResult) -> None:
        index = len(self.overlapped)
        self.overlapped.append(index + 1 >= FRAMES or self.model.started[index + 1].wait(timeout=10))


def test_the_next_invoke_runs_while_the_loop_handles_a_frame(tiny_int8, tmp_path):
    model = WatchedModel(tiny_int8)
    sink = WaitsForTheNextInvoke(model)
    summary = run_stream(model, open_source(str(make_video(tmp_path / "clip.mp4"))), StreamOptions(max_frames=FRAMES),
                         Sinks([sink]))
    assert summary.classified == FRAMES and summary.ended == "max frames reached"
    assert sink.overlapped == [True] * FRAMES
    assert len(model.threads) == FRAMES and threading.current_thread().name not in model.threads


def test_a_failing_invoke_is_raised_in_the_callers_thread(tiny_int8, tmp_path):
    model = WatchedModel(tiny_int8, fail_at=2)
    handled = []
    sink = WaitsForTheNextInvoke(model)
    sink.handle = handled.append  # type: ignore[method-assign]
    earlier = set(threading.enumerate())  # another test's camera loop may still be running in this process
    with pytest.raises(ModelError, match="injected"):
        run_stream(model, open_source(str(make_video(tmp_path / "clip.mp4"))), StreamOptions(), Sinks([sink]))
    assert len(handled) == 2  # the frames before the failure were handled; the loop's threads ended
    assert not [t.name for t in set(threading.enumerate()) - earlier if t.name in ("edgeclf-invoke", "edgeclf-capture")]


def test_the_loop_shortens_the_thread_switch_interval_and_gives_it_back(tiny_int8, tmp_path):
    """While a loop runs, an output's thread holding the interpreter lock keeps it waiting at most 1 ms (Python's
    default is 5 ms); the caller's setting is back when the last loop ends, also when a run fails or two overlap."""
    import sys

    from edgeclf.runtime.sinks import CallbackSink
    from edgeclf.runtime.stream import SWITCH_INTERVAL_S

    def run(model, name, sinks=()):
        return run_stream(model, open_source(str(make_video(tmp_path / name))), StreamOptions(max_frames=FRAMES),
                          Sinks(list(sinks)))

    callers = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        seen: list[float] = []
        summary = run(Model(tiny_int8), "clip.mp4", [CallbackSink(lambda result: seen.append(sys.getswitchinterval()))])
        assert summary.classified == FRAMES and seen == [SWITCH_INTERVAL_S] * FRAMES
        assert sys.getswitchinterval() == 0.004
        with pytest.raises(ModelError):
            run(WatchedModel(tiny_int8, fail_at=1), "clip2.mp4")
        assert sys.getswitchinterval() == 0.004
        # two loops that overlap (a library may run two cameras): the first to end leaves the short interval to the
        # other, and the last to end gives the caller's back
        from edgeclf.runtime.stream import _switch_interval

        _switch_interval.enter()  # loop A starts
        _switch_interval.enter()  # loop B starts
        _switch_interval.exit()  # A ends first
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
        _switch_interval.exit()  # then B
        assert sys.getswitchinterval() == 0.004
    finally:
        sys.setswitchinterval(callers)
