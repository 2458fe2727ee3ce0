"""Writing a file so that a failure (a kill, a full disk) never leaves it half-written; where caches live."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(target: Path, content: bytes) -> None:
    """Writes `content` beside `target`, flushes it to disk and renames it over `target`.

    Raises:
        OSError: naming `target` (a full disk then reports the file the user knows); no temporary
            file is left behind and an earlier `target` is unchanged.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    finally:
        Path(temporary).unlink(missing_ok=True)


def cache_root() -> Path:
    """Where edgeclf keeps its caches: $EDGECLF_CACHE, else ~/.cache/edgeclf."""
    return Path(os.environ.get("EDGECLF_CACHE") or Path.home() / ".cache" / "edgeclf")
