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


SWITCH_CHECK = """
import json, sys
from edgeclf.runtime.model import Model, ModelError
from edgeclf.runtime.sinks import CallbackSink, Sinks
from edgeclf.runtime.sources import open_source
from edgeclf.runtime.stream import StreamOptions, _switch_interval, run_stream
model_path, clip = sys.argv[1:3]
sys.setswitchinterval(0.004)
seen, figures = [], {}

def run(model, sinks=()):
    return run_stream(model, open_source(clip), StreamOptions(max_frames=4), Sinks(list(sinks)))

figures["classified"] = run(Model(model_path), [CallbackSink(lambda r: seen.append(sys.getswitchinterval()))]).classified
figures["during"], figures["after"] = seen, sys.getswitchinterval()

class Failing(Model):
    def invoke(self, tensor):
        raise ModelError("injected")

try:
    run(Failing(model_path))
except ModelError:
    figures["after_a_failure"] = sys.getswitchinterval()
# two loops that overlap (a library may run two cameras): the first to end leaves the short interval to the other
_switch_interval.enter()  # loop A starts
_switch_interval.enter()  # loop B starts
_switch_interval.exit()  # A ends first
figures["one_still_running"] = sys.getswitchinterval()
_switch_interval.exit()  # then B
figures["both_ended"] = sys.getswitchinterval()
print(json.dumps(figures))
"""


def test_the_loop_shortens_the_thread_switch_interval_and_gives_it_back(tiny_int8, tmp_path):
    """While a loop runs, an output's thread holding the interpreter lock keeps it waiting at most 1 ms (Python's
    default is 5 ms); the caller's setting is back when the last loop ends, also when a run fails or two overlap.
    In a process of its own: the setting is the whole interpreter's, and other tests' loops may still run here."""
    import json
    import subprocess
    import sys

    from edgeclf.runtime.stream import SWITCH_INTERVAL_S

    clip = make_video(tmp_path / "clip.mp4")
    done = subprocess.run([sys.executable, "-c", SWITCH_CHECK, str(tiny_int8), str(clip)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures == {"classified": FRAMES, "during": [SWITCH_INTERVAL_S] * FRAMES, "after": 0.004,
                       "after_a_failure": 0.004, "one_still_running": SWITCH_INTERVAL_S, "both_ended": 0.004}
