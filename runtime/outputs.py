"""The camera's local outputs as sinks: JSON lines on stdout, the recorded video, the window.

Network outputs live in their own modules (serve.py for the web view; MQTT, webhooks and the rest
beside it); all of them follow the `Sink` interface of sinks.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

from edgeclf.runtime.sinks import FrameResult, Sink


def json_line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


class JsonLinesSink(Sink):
    """One JSON line per classified frame on stdout, or with `events_only` one per state change."""

    name = "json"
    inline = True  # see Sink.inline: every line of a file source is printed, in step with the loop

    def __init__(self, events_only: bool = False, stream: IO[str] | None = None) -> None:
        self.changes_only = events_only
        self._stream = stream

    def handle(self, result: FrameResult) -> None:
        stream = self._stream or sys.stdout
        stream.write(json_line(result.record) + "\n")
        stream.flush()


class RecorderSink(Sink):
    """Writes the annotated frames to a video file; opened on the first frame (its size comes from it)."""

    name = "record"
    wants_frames = True
    keeps_every_file_frame = True

    def __init__(self, path: Path, fps: float = 15.0) -> None:
        self.path, self.fps = Path(path), fps
        self._writer = None

    def handle(self, result: FrameResult) -> None:
        frame = result.annotated()
        if frame is None:
            return
        if self._writer is None:
            self._writer = open_video_writer(self.path, frame.shape, self.fps)
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def open_video_writer(path: Path, shape: tuple[int, ...], fps: float = 15.0):
    """An OpenCV mp4 writer for frames of `shape`; a clear error when OpenCV cannot write `path`."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise ValueError(f"--record {path}: OpenCV cannot write this file; use a .mp4 path.")
    return writer


class WindowSink(Sink):
    """Shows the annotated frames in an OpenCV window; the q key asks the camera loop to stop."""

    name = "window"
    wants_frames = True

    def handle(self, result: FrameResult) -> None:
        import cv2

        frame = result.annotated()
        if frame is None:
            return
        cv2.imshow("edgeclf camera", frame)
        if cv2.waitKey(1) & 0xFF == ord("q") and self.controls is not None:
            self.controls.stop_requested.set()

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()
