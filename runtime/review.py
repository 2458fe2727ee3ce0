"""Learning from the device: `edgeclf camera --review DIR` keeps the frames worth a human look, and
`edgeclf collect --review DIR` files them into the training folder.

Kept are frames whose top score is below `--review-below` (the model was unsure) and the frames around
each state change (where a mistake would have fired an action), at most one save per `--review-every`
seconds, the folder capped at `--review-max-mb` (oldest first). Each frame is `<time>-<frame>.jpg` (what
the model classified: the --roi or --center-crop region) with a sidecar `<same>.json`: the model's
top-k, the time, why it was kept, and the model file's sha256, so a reviewer knows which model guessed.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import write_atomically
from edgeclf.runtime.sinks import FrameResult, Sink
from edgeclf.runtime.state import UNKNOWN

BEFORE_CHANGE = 2  # classified frames before a state change kept with it
NAME = re.compile(r"^\d{8}-\d{6}-\d{6}-f\d+$")  # <date>-<time>-<microseconds>-f<frame>: names the store serves


class ReviewError(UserError, ValueError):
    """A --review option or request that cannot be used; the message names the value and the fix."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ReviewSink(Sink):
    """The camera's review store as a sink: unsure frames and frames around state changes, rate limited
    and capped by size.

    Args:
        folder: where the frames and sidecars go (created).
        model_path: the model file, hashed once so each sidecar names the model that guessed.
        below: keep frames whose top score is below this (None: only state changes).
        every: at least this many seconds between two saves.
        max_mb: the folder's cap in MiB; the oldest frames are removed past it.
        region: the part of a frame the model classified (the camera's crop), so the stored frame
            is what the model saw and what training in that folder will see.
    """

    name = "review"
    wants_frames = True
    keeps_every_file_frame = True  # a clip reviewed twice keeps the same frames

    def __init__(self, folder: Path, model_path: str | Path, below: float | None = 0.5, every: float = 2.0,
                 max_mb: float = 200.0, region: Callable[[np.ndarray], np.ndarray] = lambda image: image,
                 quality: int = 90) -> None:
        if below is not None and not 0.0 < below <= 1.0:
            raise ReviewError(f"--review-below must be in (0, 1]; received {below}. Use e.g. --review-below 0.6.")
        if every < 0:
            raise ReviewError(f"--review-every must be >= 0 seconds; received {every}. Use e.g. --review-every 2.")
        if max_mb <= 0:
            raise ReviewError(f"--review-max-mb must be > 0; received {max_mb}. Use e.g. --review-max-mb 200.")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ReviewError(f"--review {self.folder}: exists and is not a folder. Pass a folder (created if missing).")
        self.model = {"file": Path(model_path).name, "sha256": sha256_file(model_path)}
        self.below, self.every, self.max_bytes = below, every, int(max_mb * 2**20)
        self.region, self.quality = region, quality
        self._recent: deque[FrameResult] = deque(maxlen=BEFORE_CHANGE)
        self._last_save = -float("inf")
        self._sizes: dict[str, int] = {}
        self.saved = self.removed = 0
        self.reasons = {"low_score": 0, "change": 0}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.glob("*.jpg")):
            if NAME.match(path.stem):
                self._sizes[path.stem] = _size(path) + _size(path.with_suffix(".json"))

    def handle(self, result: FrameResult) -> None:
        top = result.record["top_k"]
        score = float(top[0]["score"])
        reason = "change" if result.change is not None else (
            "low_score" if self.below is not None and score < self.below else None)
        now = time.monotonic()
        if reason is not None and result.image is not None and now - self._last_save >= self.every:
            frames = [*self._recent, result] if reason == "change" else [result]
            for item in frames:
                self._save(item, reason)
            self.reasons[reason] += 1
            self._last_save = now
            self._cap()
        if result.image is not None:
            self._recent.append(result)

    def _save(self, result: FrameResult, reason: str) -> None:
        record = result.record
        stamp = record.get("time", time.time())
        seconds, fraction = divmod(int(round(stamp * 1e6)), 1_000_000)
        stem = datetime.fromtimestamp(seconds).strftime("%Y%m%d-%H%M%S") + f"-{fraction:06d}-f{record.get('frame', 0)}"
        if stem in self._sizes:
            return  # already kept (a frame both before a change and unsure)
        image = self.region(result.image)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ReviewError(f"OpenCV could not encode frame {record.get('frame')} as JPEG.")
        sidecar = {"time": record.get("time"), "frame": record.get("frame"), "reason": reason,
                   "top_k": [{"label": t["label"], "score": round(float(t["score"]), 4)} for t in record["top_k"]],
                   "state": result.state.as_dict() if result.state else None,
                   "change": result.change.as_dict() if result.change else None,
                   "model": self.model}
        body = json.dumps(sidecar, indent=1).encode()
        # The image first, then the sidecar: a listed item (one with both) is always complete.
        write_atomically(self.folder / f"{stem}.jpg", jpeg.tobytes())
        write_atomically(self.folder / f"{stem}.json", body)
        self._sizes[stem] = len(jpeg) + len(body)
        self.saved += 1

    def _cap(self) -> None:
        total = sum(self._sizes.values())
        for stem in sorted(self._sizes):
            if total <= self.max_bytes:
                break
            for suffix in (".json", ".jpg"):
                (self.folder / f"{stem}{suffix}").unlink(missing_ok=True)
            total -= self._sizes.pop(stem)
            self.removed += 1

    def summary(self) -> dict:
        return {"saved": self.saved, "removed_for_size": self.removed, "kept": len(self._sizes),
                "reasons": dict(self.reasons), "folder": str(self.folder)}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def from_options(folder: str | None, model_path: str, below: float | None, every: float, max_mb: float,
                 crop: Callable[[np.ndarray], np.ndarray]) -> ReviewSink | None:
    """The camera's --review sink, or None without --review."""
    if not folder:
        return None
    return ReviewSink(Path(folder), model_path, below, every, max_mb, crop)


class ReviewStore:
    """The frames a camera kept, for `edgeclf collect --review DIR`: list, show, assign to a class, discard."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._cache: tuple[int, list[dict]] | None = None
        if not self.folder.is_dir():
            raise ReviewError(f"--review {self.folder}: no such folder. Pass the folder given to "
                              "`edgeclf camera ... --review DIR`.")

    def _path(self, name: str, suffix: str) -> Path:
        if not NAME.match(name):
            raise ReviewError(f"no review frame {name!r}.")
        return self.folder / f"{name}{suffix}"

    def items(self) -> list[dict]:
        """Complete items (image and sidecar), oldest first, each with the model's guess.

        Read again only when the folder changed (its mtime): the page asks every second, and a folder
        near its cap holds thousands of sidecars.
        """
        try:
            stamp = self.folder.stat().st_mtime_ns
        except OSError:
            return []
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        items = []
        for sidecar in sorted(self.folder.glob("*.json")):
            name = sidecar.stem
            if not NAME.match(name) or not (self.folder / f"{name}.jpg").is_file():
                continue
            try:
                data = json.loads(sidecar.read_text())
                top = [t for t in data.get("top_k", []) if t.get("label") != UNKNOWN]
            except (OSError, ValueError, AttributeError):
                continue
            items.append({"name": name, "reason": data.get("reason"), "time": data.get("time"),
                          "guess": top[0]["label"] if top else None, "score": top[0]["score"] if top else None,
                          "top_k": top, "model": (data.get("model") or {}).get("file")})
        self._cache = (stamp, items)
        return items

    def image(self, name: str) -> bytes | None:
        try:
            return self._path(name, ".jpg").read_bytes()
        except (ReviewError, OSError):
            return None

    def assign(self, name: str, label: str, photos: Any) -> dict:
        """Moves the frame into photos/<label>/ (the class must exist there) and drops its sidecar."""
        image = self._path(name, ".jpg")
        if not image.is_file():
            raise ReviewError(f"no review frame {name!r} (already assigned or discarded).")
        target = photos.adopt(label, image, f"{name}.jpg")
        self._path(name, ".json").unlink(missing_ok=True)
        self._cache = None  # a change within the file system's timestamp tick would not move the mtime
        return {"name": name, "label": label, "file": str(target)}

    def discard(self, name: str) -> dict:
        image = self._path(name, ".jpg")
        if not image.is_file():
            raise ReviewError(f"no review frame {name!r} (already assigned or discarded).")
        image.unlink()
        self._path(name, ".json").unlink(missing_ok=True)
        self._cache = None
        return {"name": name, "discarded": True}
