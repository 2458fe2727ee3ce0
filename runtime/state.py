"""The camera's state: a debounced label that changes only when a new one has clearly won.

Actions (MQTT, webhooks, snapshots, GPIO) fire on a state *change*, never per frame: a flickering
top-1 between two labels must not publish twenty events a second.
"""
from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "unknown"


@dataclass(frozen=True)
class StateChange:
    """One change of the debounced state: what it was, what it is now, and when it was decided."""

    previous: str | None  # None for the first state of a run
    state: str
    score: float  # the new label's score on the frame that decided the change
    time: float  # wall-clock seconds (time.time()) of the deciding frame's capture
    frame: int  # the deciding frame's index in the source

    def as_dict(self) -> dict:
        return {"previous": self.previous, "state": self.state, "score": round(float(self.score), 4),
                "time": round(self.time, 3), "frame": self.frame}


@dataclass(frozen=True)
class State:
    """The current debounced state: its label, the score of its latest frame, since when it holds."""

    label: str
    score: float
    since: float

    def as_dict(self) -> dict:
        return {"label": self.label, "score": round(float(self.score), 4), "since": round(self.since, 3)}


class Debouncer:
    """Turns per-frame top-1 labels into a state that changes after `confirm` frames in a row or `hold` s.

    A candidate label wins when it has been the top-1 of `confirm` consecutive classified frames; when
    `hold` is set, the rule is time instead: top-1 without interruption for at least `hold` seconds
    (a frame count means little when the frame rate varies). Any other label resets the candidate.
    """

    def __init__(self, confirm: int = 3, hold: float | None = None) -> None:
        if confirm < 1:
            raise ValueError(f"--confirm must be >= 1; received {confirm}. Use e.g. --confirm 3.")
        if hold is not None and hold < 0:
            raise ValueError(f"--hold must be >= 0 seconds; received {hold}. Use e.g. --hold 2.")
        self.confirm, self.hold = confirm, hold
        self.current: State | None = None
        self._candidate: str | None = None
        self._count = 0
        self._candidate_since = 0.0

    def update(self, label: str, score: float, now: float, frame: int) -> StateChange | None:
        """Feeds one classified frame's top-1; returns the change it decides, if any."""
        if self.current is not None and label == self.current.label:
            self.current = State(label, score, self.current.since)
            self._candidate, self._count = None, 0
            return None
        if label != self._candidate:
            self._candidate, self._count, self._candidate_since = label, 0, now
        self._count += 1
        if self.hold is not None:
            decided = now - self._candidate_since >= self.hold
        else:
            decided = self._count >= self.confirm
        if not decided:
            return None
        previous = self.current.label if self.current else None
        self.current = State(label, score, now)
        self._candidate, self._count = None, 0
        return StateChange(previous, label, score, now, frame)
