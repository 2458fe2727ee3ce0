"""The on-disk uint8 image cache: each image decoded and resized once, then read back per batch.

One cache entry per (dataset folder, input size) under `$EDGECLF_CACHE/images/`:

- `pixels-<id>.u8`: raw rows of (height, width, 3) uint8 RGB, one per readable image;
- `index.json`: for every file seen, its size and mtime (the key), its row, or why it was skipped.

A file whose size or mtime changed, or a new file, is decoded again; a removed one is dropped. An
update writes a new pixels file and then replaces index.json atomically, so a build killed mid-way
leaves the previous entry valid; an index whose pixels file is missing or of the wrong length is
rebuilt. Rows are read with `os.pread`, so reading an epoch never maps the whole file into the
process (memory stays bounded for folders larger than RAM; the OS page cache does the caching).

No TensorFlow here: `edgeclf.toolchain.pipeline` streams these rows into tf.data.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from edgeclf.runtime.files import cache_root, write_atomically
from edgeclf.runtime.folder import LabelledImages
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageError, preprocess

log = logging.getLogger(__name__)

FORMAT = 2  # bump when preprocess output changes, so old entries are not reused (2: large JPEGs decoded reduced)
CHUNK = 256  # files decoded per batch of thread-pool work


def _entry_dir(root: Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> Path:
    # Another pixel budget skips other files: it gets an entry of its own (no suffix for the default).
    budget = "" if max_pixels == DEFAULT_MAX_PIXELS else f"|max{max_pixels}"
    key = f"{os.path.realpath(root)}|{size[0]}x{size[1]}|v{FORMAT}{budget}"
    return cache_root() / "images" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}-{size[0]}x{size[1]}"


@dataclass
class CacheStats:
    """What one cache update did: files decoded now, reused from earlier runs, dropped."""

    decoded: int = 0
    reused: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"decoded": self.decoded, "reused": self.reused, "dropped": self.dropped}


@dataclass
class CachedPixels:
    """A split's preprocessed images, read from the cache on demand; indexes like a uint8 array.

    `images[i]`, `images[a:b]` and `images[[i, j]]` return (.., height, width, 3) uint8 arrays, so
    evaluation and calibration code written for arrays works unchanged while nothing but the asked
    rows is ever in memory.
    """

    pixels: Path
    rows: np.ndarray  # (N,) row of each image in the pixels file
    size: tuple[int, int]

    def __post_init__(self) -> None:
        self._fd: int | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.size[0], self.size[1], 3)

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.read(np.array([index]))[0]
        if isinstance(index, slice):
            return self.read(np.arange(len(self.rows))[index])
        return self.read(np.asarray(index, dtype=np.int64))

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The images at these sample indices, in that order."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        height, width = self.size
        row_bytes = height * width * 3
        out = np.empty((len(indices), height, width, 3), np.uint8)
        if self._fd is None:
            self._fd = os.open(self.pixels, os.O_RDONLY)
        flat = out.reshape(len(indices), row_bytes)
        rows = self.rows[indices]
        for position in np.argsort(rows, kind="stable"):  # ascending offsets: sequential reads
            data = os.pread(self._fd, row_bytes, int(rows[position]) * row_bytes)
            if len(data) != row_bytes:
                raise ImageError(f"{self.pixels}: the image cache is shorter than its index. Delete "
                                 f"{self.pixels.parent} and run again.")
            flat[position] = np.frombuffer(data, np.uint8)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"] = None
        return state


class Entry(NamedTuple):
    """One file in a cache entry's index (stored as a JSON list [size, mtime_ns, row])."""

    size: int  # bytes, when it was decoded
    mtime_ns: int
    row: int | str  # its row in the pixels file, or why it was skipped


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _decode(path: Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | str:
    try:
        return preprocess(path, size, max_pixels)
    except ImageError as exc:
        return str(exc).removeprefix(f"{path}: ")


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    """One writer per cache entry; concurrent builds on the same data wait for each other."""
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / ".lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_index(entry: Path, row_bytes: int) -> dict:
    """The entry's index, or an empty one when it is missing, unreadable or its pixels file is damaged."""
    try:
        index = json.loads((entry / "index.json").read_text(encoding="utf-8"))
        pixels = entry / index["pixels"]
        if index.get("format") != FORMAT or pixels.stat().st_size != index["rows"] * row_bytes:
            raise ValueError("pixels file does not match its index")
        return index
    except FileNotFoundError:
        return {"files": {}}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("image cache %s is damaged (%s); rebuilding it", entry, exc)
        return {"files": {}}


def update(root: str | os.PathLike, files: Sequence[Path], size: int | tuple[int, int],
          progress: Callable[[int], None] | None = None, workers: int | None = None,
          max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Path, dict, CacheStats]:
    """Brings the cache entry of `root` at `size` up to date with `files`.

    Args:
        max_pixels: the pixel budget of one image; a file whose header claims more is skipped, never decoded.

    Returns:
        (pixels file, {path: row or skip reason}, what was decoded/reused/dropped).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    entry = _entry_dir(Path(root), size, max_pixels)
    row_bytes = size[0] * size[1] * 3
    with _locked(entry):
        for leftover in entry.glob(".*.tmp"):  # a writer killed mid-update; we hold the lock, so none is running
            leftover.unlink(missing_ok=True)
        index = _read_index(entry, row_bytes)
        old = {name: Entry(*value) for name, value in index["files"].items()}
        keys = {str(path): _stat_key(path) for path in files}
        unchanged = {name for name, key in keys.items() if name in old and key and old[name][:2] == key}
        todo = [path for path in files if str(path) not in unchanged]
        stats = CacheStats(reused=len(unchanged), dropped=len(set(old) - set(keys)))
        if not todo and not stats.dropped and old:
            if progress is not None:
                progress(len(files))
            return entry / index["pixels"], {p: e.row for p, e in old.items()}, stats
        pixels_name = f"pixels-{uuid.uuid4().hex[:12]}.u8"
        new_files: dict[str, Entry] = {}
        rows = 0
        temporary = entry / f".{pixels_name}.tmp"
        try:
            with open(temporary, "wb") as out:
                rows = _copy_reused(entry, index, unchanged, keys, old, out, new_files, row_bytes, progress)
                rows = _decode_new(todo, keys, size, out, new_files, rows, progress, workers, max_pixels)
                stats.decoded = len(todo)
            os.replace(temporary, entry / pixels_name)
            _write_json(entry / "index.json", {"format": FORMAT, "root": str(root), "size": list(size),
                                               "pixels": pixels_name, "rows": rows, "files": new_files})
        finally:
            temporary.unlink(missing_ok=True)
        for stale in entry.glob("pixels-*.u8"):
            if stale.name != pixels_name:
                stale.unlink(missing_ok=True)
        return entry / pixels_name, {p: e.row for p, e in new_files.items()}, stats


def _copy_reused(entry: Path, index: dict, reused: set[str], keys: dict, old: dict, out, new_files: dict,
                 row_bytes: int, progress: Callable[[int], None] | None) -> int:
    """Copies the rows of the unchanged files from the previous pixels file; returns the rows written."""
    if not reused:
        return 0
    rows = 0
    with open(entry / index["pixels"], "rb") as previous:
        for name in sorted(reused, key=lambda n: old[n].row if isinstance(old[n].row, int) else -1):
            value = old[name].row
            if isinstance(value, int):
                out.write(os.pread(previous.fileno(), row_bytes, value * row_bytes))
                value = rows
                rows += 1
            new_files[name] = Entry(*keys[name], value)
    if progress is not None:
        progress(len(reused))
    return rows


def _decode_new(todo: Sequence[Path], keys: dict, size: tuple[int, int], out, new_files: dict, rows: int,
                progress: Callable[[int], None] | None, workers: int | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """Decodes new and changed files on a thread pool (OpenCV releases the GIL); returns the rows written."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            for path, result in zip(chunk, pool.map(_decode, chunk, [size] * len(chunk), [max_pixels] * len(chunk))):
                key = keys[str(path)] or (0, 0)
                if isinstance(result, str):
                    new_files[str(path)] = Entry(*key, result)
                else:
                    out.write(result.tobytes())
                    new_files[str(path)] = Entry(*key, rows)
                    rows += 1
            if progress is not None:
                progress(len(chunk))
    return rows


def _write_json(path: Path, data: dict) -> None:
    write_atomically(path, json.dumps(data).encode("utf-8"))


def load(root: str | os.PathLike, files: Sequence[tuple[Path, int]], size: int | tuple[int, int],
         progress: Callable[[int], None] | None = None, stats: CacheStats | None = None,
         entry: tuple[Path, dict] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> LabelledImages:
    """The cached images of `files` ((path, label) pairs under root); unreadable files are skipped and listed.

    Args:
        entry: a (pixels, rows) pair from `update` covering these files (skips a second update).
        stats: filled with what the update did.
        max_pixels: the pixel budget of one image (see `update`).
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if entry is None:
        pixels, mapping, done = update(root, [path for path, _ in files], size, progress, max_pixels=max_pixels)
        if stats is not None:
            stats.decoded, stats.reused, stats.dropped = done.decoded, done.reused, done.dropped
    else:
        pixels, mapping = entry
    rows, labels, paths, skipped = [], [], [], []
    for path, label in files:
        value = mapping[str(path)]
        if isinstance(value, str):
            skipped.append({"path": str(path), "reason": value})
            continue
        rows.append(value)
        labels.append(label)
        paths.append(str(path))
    return LabelledImages(CachedPixels(pixels, np.asarray(rows, np.int64), size), np.asarray(labels, np.int64),
                          paths, skipped)
