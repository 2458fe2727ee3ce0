"""Where the camera loop's results go: one small interface for JSON lines, the web view, the recorder,
the window, MQTT, webhooks, snapshots, GPIO and the rest.

The loop builds one `FrameResult` per classified frame and hands it to `Sinks.publish`, which never
blocks: each sink owns a bounded queue and a thread, so a slow or dead sink (a hanging webhook, a
broker that is down) drops and counts instead of slowing classification. A sink that acts on state
changes sets `changes_only` and is handed only the frames that changed the state; the loop's other
frames never fill its queue or wake its thread. A sink that only looks at the stream now and then (periodic
stats) sets `period`: each frame's record is appended to its feed (one deque append on the loop's thread,
no wake) and its thread takes them in one batch every `period` seconds.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgeclf.runtime.state import State, StateChange

log = logging.getLogger(__name__)
QUEUE_FRAMES = 8  # per-frame sinks: a few frames of slack, then the oldest is dropped
QUEUE_CHANGES = 256  # change sinks: changes are rare; a full queue means the sink is stuck
WAIT_LIMIT_S = 10.0  # longest wait for a sink that keeps every frame of a file source
FEED_RECORDS = 50_000  # records a periodic sink's feed holds between two of its ticks; then the oldest go (counted)


@dataclass
class FrameResult:
    """One classified frame as every sink sees it.

    Attributes:
        record: the JSON-ready record (frame, time, top_k, ms, fps, and "state" on a change frame).
        image: the frame as captured, RGB uint8 (before crop and resize); None when no sink wants frames.
        state: the debounced state after this frame (None until the first one is decided).
        change: the change this frame decided, if any.
        annotate: draws labels and FPS on the frame (BGR); computed once, shared by the sinks that want it.
    """

    record: dict
    image: np.ndarray | None = None
    state: State | None = None
    change: StateChange | None = None
    annotate: Callable[[], np.ndarray] | None = None
    _annotated: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def annotated(self) -> np.ndarray | None:
        """The annotated BGR frame, drawn on first use (so nobody pays for it when no sink asks)."""
        if self.image is None or self.annotate is None:
            return None
        with self._lock:
            if self._annotated is None:
                self._annotated = self.annotate()
            return self._annotated


class Sink:
    """An output of the camera loop. Subclasses override `handle`; `start` and `close` are optional.

    `handle` runs on the sink's own thread, one result at a time, in order. An exception in it is
    logged and counted (`errors`), never raised into the loop. `summary()` is merged into the camera's
    end-of-run summary under the sink's `name`.
    """

    name = "sink"
    wants_frames = False  # True when handle() needs result.image or result.annotated()
    changes_only = False  # True when only frames that changed the state matter to it
    # True runs handle() on the loop's thread, in step with it: only for stdout's JSON lines, the
    # command's own output, where a reader piping it wants every line of a file source and a line
    # costs microseconds (a reader that stops reading blocks the process, as for any CLI).
    inline = False
    # True: for a file source (read in order, not live) the loop waits for this sink instead of
    # dropping, so a recording of a clip has every frame. Live sources always drop.
    keeps_every_file_frame = False
    # Seconds: the sink samples the stream instead of handling results. It is never handed a result; every
    # `period` seconds (and once after the last frame) `tick` runs on its thread with the records of the frames
    # published since the last tick. For figures over many frames (stats), where a queue put and a thread wake
    # per frame would cost the loop more than the figures are worth.
    period: float | None = None
    # Set by Sinks before start(): the loop's controls (`stop_requested`, `paused`) a sink may use.
    controls: "Sinks | None" = None

    def start(self) -> None:
        """Called once, on the sink's thread, before the first result (connect, open files)."""

    def handle(self, result: FrameResult) -> None:
        raise NotImplementedError

    def tick(self, records: list[dict], frames: int) -> None:
        """For a sink with a `period`: the records published since the last tick (the newest FEED_RECORDS at
        most) and `frames`, how many frames were published in all since the run began."""

    def close(self) -> None:
        """Called once, on the sink's thread, after the last result (flush, disconnect)."""

    def summary(self) -> dict:
        """Sink-specific figures for the run's summary (e.g. published, queued during an outage)."""
        return {}


class Feed:
    """The records a periodic sink has not taken yet: appended by the loop's thread, taken by the sink's."""

    def __init__(self, maxlen: int = FEED_RECORDS) -> None:
        self._records: deque[dict] = deque(maxlen=maxlen)
        self.frames = 0  # records appended since the run began (written by the loop's thread only)
        self._taken = self._lost = 0

    def append(self, record: dict) -> None:
        self._records.append(record)
        self.frames += 1

    def take(self) -> tuple[list[dict], int, int]:
        """(the records waiting, oldest first; frames published in all; records a full feed lost since the last
        take)."""
        records = []
        while True:
            try:
                records.append(self._records.popleft())
            except IndexError:
                break
        self._taken += len(records)
        frames = self.frames
        waiting = len(self._records)  # read after `frames`: what came meanwhile is never counted as lost
        lost = max(self._lost, frames - self._taken - waiting)
        lost, self._lost = lost - self._lost, lost
        return records, frames, lost


class _Runner:
    """A sink's bounded queue and thread. On a full queue the oldest waiting result is dropped.

    For a periodic sink (`Sink.period`) there is no queue: the thread ticks every period with the sink's feed.
    """

    _END = object()

    def __init__(self, sink: Sink, maxsize: int) -> None:
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.feed = Feed() if sink.period is not None else None
        self.handled = self.dropped = self.errors = 0
        self.last_error: str | None = None
        self._finished = threading.Event()
        target = self._run if self.feed is None else self._run_periodic
        self._thread = threading.Thread(target=target, name=f"edgeclf-sink-{sink.name}", daemon=True)
        self._thread.start()

    def put(self, item: Any, wait: bool = False) -> None:
        if wait:
            try:
                self.queue.put(item, timeout=WAIT_LIMIT_S)
                return
            except queue.Full:
                pass  # stuck for WAIT_LIMIT_S: fall back to dropping, so the loop never hangs on a sink
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        try:
            self.sink.start()
        except Exception as exc:  # noqa: BLE001 - a sink that cannot start must not stop the camera
            self._error(exc)
        while True:
            item = self.queue.get()
            if item is self._END:
                break
            try:
                self.sink.handle(item)
                self.handled += 1
            except Exception as exc:  # noqa: BLE001
                self._error(exc)
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001
            self._error(exc)

    def _run_periodic(self) -> None:
        try:
            self.sink.start()
        except Exception as exc:  # noqa: BLE001
            self._error(exc)
        while not self._finished.wait(self.sink.period):
            self._tick()
        self._tick()  # the frames since the last tick
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001
            self._error(exc)

    def _tick(self) -> None:
        records, frames, lost = self.feed.take()
        self.handled += len(records)
        self.dropped += lost
        try:
            self.sink.tick(records, frames)
        except Exception as exc:  # noqa: BLE001
            self._error(exc)

    def _error(self, exc: Exception) -> None:
        self.errors += 1
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last_error:  # one line per distinct error, not one per frame
            log.warning("%s: %s", self.sink.name, message)
        self.last_error = message

    def finish(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self.feed is not None:
            self._finished.set()
            self._thread.join(timeout)
            return
        try:
            self.queue.put(self._END, timeout=timeout)
        except queue.Full:  # stuck sink: what it still holds is lost, and counted
            self.dropped += self.queue.qsize()
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def summary(self) -> dict:
        figures = {"handled": self.handled, "dropped": self.dropped, "errors": self.errors}
        if self.last_error:
            figures["last_error"] = self.last_error
        try:
            figures.update(self.sink.summary())
        except Exception as exc:  # noqa: BLE001
            figures["summary_error"] = str(exc)
        return figures


class Sinks:
    """The list of outputs of one camera run; `publish` fans a result out without ever blocking."""

    def __init__(self, sinks: list[Sink]) -> None:
        names = [s.name for s in sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"each sink needs its own name; received {', '.join(duplicates)} twice.")
        self.stop_requested = threading.Event()  # a sink (the window's q key) may ask the loop to stop
        # A sink (MQTT's set topic) may pause classification: the loop keeps reading frames, skips the model.
        self.paused = threading.Event()
        for sink in sinks:
            sink.controls = self
        self._inline = [s for s in sinks if s.inline]
        for sink in self._inline:
            sink.start()
        self._runners = [_Runner(s, QUEUE_CHANGES if s.changes_only else QUEUE_FRAMES) for s in sinks if not s.inline]
        self._feeds = [r.feed for r in self._runners if r.feed is not None]
        # Each frame costs a sink only what it asked for: a periodic sink one append to its feed, a change sink
        # nothing until a change, a per-frame sink a queue put (and its thread's wake).
        self._every_frame = [r for r in self._runners if r.feed is None and not r.sink.changes_only]
        self._on_change = [r for r in self._runners if r.feed is None and r.sink.changes_only]

    @property
    def wants_frames(self) -> bool:
        return (any(r.sink.wants_frames for r in self._runners if r.feed is None)
                or any(s.wants_frames for s in self._inline))

    def publish(self, result: FrameResult, from_file: bool = False) -> None:
        """Hands `result` to every sink; `from_file`: the source is a file read in order, not live."""
        for sink in self._inline:
            if not sink.changes_only or result.change is not None:
                sink.handle(result)
        for feed in self._feeds:
            feed.append(result.record)
        for runner in self._every_frame:
            runner.put(result, wait=from_file and runner.sink.keeps_every_file_frame)
        if result.change is not None:
            for runner in self._on_change:
                runner.put(result, wait=from_file and runner.sink.keeps_every_file_frame)

    def close(self, timeout: float = 10.0) -> None:
        """Lets every sink finish what is queued (up to `timeout` seconds in all), then closes it."""
        deadline = time.monotonic() + timeout
        for runner in self._runners:
            runner.finish(max(0.1, deadline - time.monotonic()))
        for sink in self._inline:
            sink.close()

    def summary(self) -> dict:
        figures = {r.sink.name: r.summary() for r in self._runners}
        figures.update({s.name: s.summary() for s in self._inline})
        return figures


class CallbackSink(Sink):
    """Calls `function(result)` for each result (or each change): edgeclf used as a library.

    `keeps_every_file_frame`: for a file source, the loop waits for the callback instead of dropping a frame while
    it is behind (a script that analyses a clip wants every frame); a live source always drops.
    """

    def __init__(self, function: Callable[[FrameResult], None], name: str = "callback",
                 changes_only: bool = False, wants_frames: bool = False, keeps_every_file_frame: bool = False) -> None:
        self.function, self.name = function, name
        self.changes_only, self.wants_frames = changes_only, wants_frames
        self.keeps_every_file_frame = keeps_every_file_frame

    def handle(self, result: FrameResult) -> None:
        self.function(result)
