"""Writing a file so that a failure (a kill, a full disk) never leaves it half-written; where caches live."""
from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path


def write_atomically(target: Path, content: bytes) -> None:
    """Writes `content` beside `target`, flushes it to disk and renames it over `target`.

    The temporary file is `.<name>.<pid>.<n>.tmp` (mode 0600), made with O_EXCL: no random name, no listing.

    Raises:
        OSError: naming `target` (a full disk then reports the file the user knows); no temporary
            file is left behind and an earlier `target` is unchanged.
    """
    target = Path(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    temporary = None
    try:
        for attempt in range(100):
            temporary = target.parent / f".{target.name}.{os.getpid()}.{next(_TEMPORARIES)}.tmp"
            try:
                handle = os.open(temporary, flags, 0o600)
                break
            except FileExistsError:  # left by a process that died with this pid: take the next number
                continue
            except FileNotFoundError:
                if attempt:
                    raise
                target.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(temporary, flags, 0o600)
                break
        else:
            stale, temporary = temporary, None  # none of them is ours to remove
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(stale))
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(handle, view):]
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, target)
    except OSError as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


_TEMPORARIES = itertools.count()


def cache_root() -> Path:
    """Where edgeclf keeps its caches: $EDGECLF_CACHE, else ~/.cache/edgeclf."""
    return Path(os.environ.get("EDGECLF_CACHE") or Path.home() / ".cache" / "edgeclf")
