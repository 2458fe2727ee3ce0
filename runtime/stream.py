"""The live classification loop behind `edgeclf camera`: frames in, top-k labels and timings out.

Stages per frame: capture and preprocess (crop + resize; uint8 models get the resized pixels with
no float math) in the capture thread, overlapping the model; then invoke and post (dequantize,
smoothing, top-k, threshold) in this loop.
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from edgeclf.runtime.model import Model
from edgeclf.runtime.sources import FrameGrabber, Source

STAGES = ("capture", "preprocess", "invoke", "post")
STATS_WINDOW = 10_000  # frames the stage medians are taken over


class StreamOptionError(ValueError):
    """An invalid camera option; the message names the option, the value and the fix."""


@dataclass(frozen=True)
class StreamOptions:
    top_k: int = 3
    every: int = 1  # classify every Nth frame
    smooth: int = 1  # average scores over the last K classified frames
    threshold: float = 0.0  # below it the top label is reported as "unknown"
    roi: tuple[int, int, int, int] | None = None  # x, y, w, h in source pixels
    center_crop: bool = False
    max_frames: int | None = None  # classified frames to stop after

    def __post_init__(self) -> None:
        for name, value in (("--top-k", self.top_k), ("--every", self.every), ("--smooth", self.smooth)):
            if value < 1:
                raise StreamOptionError(f"{name} must be >= 1; received {value}. Use e.g. {name} 1.")
        if not 0.0 <= self.threshold <= 1.0:
            raise StreamOptionError(f"--threshold must be in [0, 1]; received {self.threshold}. Use e.g. --threshold 0.5.")
        if self.max_frames is not None and self.max_frames < 1:
            raise StreamOptionError(f"--max-frames must be >= 1; received {self.max_frames}. Use e.g. --max-frames 100.")
        if self.roi is not None and (len(self.roi) != 4 or self.roi[2] <= 0 or self.roi[3] <= 0 or min(self.roi[:2]) < 0):
            raise StreamOptionError(f"--roi must be x,y,w,h with w, h > 0 and x, y >= 0; received {self.roi}. "
                                    "Use e.g. --roi 160,80,320,320.")
        if self.roi is not None and self.center_crop:
            raise StreamOptionError("--roi and --center-crop exclude each other; received both. Use one of them.")


def parse_roi(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise StreamOptionError(f"--roi must be four integers x,y,w,h; received {text!r}. Use e.g. --roi 160,80,320,320.")
    return values  # type: ignore[return-value]


def crop(image: np.ndarray, options: StreamOptions) -> np.ndarray:
    if options.roi is not None:
        x, y, w, h = options.roi
        if x + w > image.shape[1] or y + h > image.shape[0]:
            raise StreamOptionError(f"--roi {x},{y},{w},{h} lies outside the {image.shape[1]}x{image.shape[0]} frame. "
                                    "Choose a region inside the frame.")
        return image[y:y + h, x:x + w]
    if options.center_crop:
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        return image[top:top + side, left:left + side]
    return image


def annotate(image: np.ndarray, top_k: list[dict], fps: float) -> np.ndarray:
    """The frame (BGR, for OpenCV writers and windows) with the labels, scores and FPS drawn on it."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    scale = max(0.5, canvas.shape[1] / 800)
    lines = [f"{t['label']} {t['score']:.2f}" for t in top_k] + [f"{fps:.1f} FPS"]
    for i, line in enumerate(lines):
        y = int((28 + 28 * i) * scale)
        cv2.putText(canvas, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), int(4 * scale), cv2.LINE_AA)
        cv2.putText(canvas, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), int(2 * scale), cv2.LINE_AA)
    return canvas


@dataclass
class StreamSummary:
    source: str
    classified: int = 0
    frames_read: int = 0
    dropped: int = 0  # live frames replaced by a newer one before the model saw them
    skipped: int = 0  # frames passed over by --every
    seconds: float = 0.0
    ended: str = "source ended"
    # The last STATS_WINDOW values per stage (medians), and running sums (means): a camera that runs for
    # weeks must not grow a list per frame.
    stage_ms: dict[str, deque] = field(default_factory=lambda: {s: deque(maxlen=STATS_WINDOW) for s in STAGES})
    stage_sum: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    stage_count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    read_errors: int = 0  # failed reads of a live source that were retried

    def add(self, stage: str, value: float) -> None:
        self.stage_ms[stage].append(value)
        self.stage_sum[stage] += value
        self.stage_count[stage] += 1

    @property
    def fps(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        stages = {name: {"median": round(float(np.median(v)), 4),
                         "mean": round(self.stage_sum[name] / self.stage_count[name], 4)} if v else None
                  for name, v in self.stage_ms.items()}
        return {"source": self.source, "classified": self.classified, "frames_read": self.frames_read,
                "dropped": self.dropped, "skipped": self.skipped, "read_errors": self.read_errors,
                "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 2), "stage_ms": stages, "ended": self.ended}


def run_stream(model: Model, source: Source, options: StreamOptions,
               on_result: Callable[[dict, np.ndarray], None] | None = None,
               wants_frames: bool = False, stop: Callable[[], bool] = lambda: False) -> StreamSummary:
    """Classifies frames until the source ends, max_frames is reached, stop() is true or Ctrl-C.

    Args:
        on_result: called with each result record and, when wants_frames, the annotated BGR frame.
    """
    summary = StreamSummary(source.name)
    grabber = FrameGrabber(source, lambda image: model.prepare(crop(image, options)), options.every)
    history: deque[np.ndarray] = deque(maxlen=options.smooth)
    started = time.perf_counter()
    try:
        while not stop():
            frame = grabber.next()
            if frame is None:
                if grabber.error:
                    summary.ended = f"source failed: {grabber.error}"
                break
            if frame.index % options.every:
                summary.skipped += 1
                continue
            if frame.error is not None:
                raise frame.error
            t1 = time.perf_counter()
            raw = model.invoke(frame.tensor)
            t2 = time.perf_counter()
            history.append(model.dequantize(raw)[0])
            top = _top_labels(model, history, options)
            t3 = time.perf_counter()
            stage = {"capture": frame.capture_ms, "preprocess": frame.preprocess_ms, "invoke": (t2 - t1) * 1e3,
                     "post": (t3 - t2) * 1e3}
            for name, value in stage.items():
                summary.add(name, value)
            summary.classified += 1
            if on_result is not None:
                fps = summary.classified / (time.perf_counter() - started)
                record = {"frame": frame.index, "time": round(frame.captured, 3), "top_k": top,
                          "ms": {k: round(v, 3) for k, v in stage.items()}, "fps": round(fps, 2)}
                on_result(record, annotate(frame.image, top, fps) if wants_frames else None)
            if options.max_frames is not None and summary.classified >= options.max_frames:
                summary.ended = "max frames reached"
                break
    except KeyboardInterrupt:
        summary.ended = "interrupted"
    finally:
        summary.seconds = time.perf_counter() - started
        grabber.close()
        summary.frames_read, summary.dropped, summary.read_errors = grabber.read, grabber.dropped, grabber.read_errors
    return summary


def _top_labels(model: Model, history: deque, options: StreamOptions) -> list[dict]:
    """Top-k of the scores averaged over the last `smooth` frames; "unknown" first below the threshold."""
    scores = np.mean(history, axis=0) if len(history) > 1 else history[0]
    top = [{"label": label, "score": score} for label, score in model.top_k(scores, options.top_k)]
    if top[0]["score"] < options.threshold:
        top.insert(0, {"label": "unknown", "score": top[0]["score"]})
        top = top[:options.top_k]
    return top


def json_line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))
