"""Writing a file so that a failure (a kill, a full disk) never leaves it half-written; reading a file that
holds a secret; where caches live."""
from __future__ import annotations

import errno
import itertools
import os
import stat
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
    except BaseException as exc:  # an OSError, or Ctrl-C / SIGTERM mid-write: no temporary left beside the artifacts
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise


_TEMPORARIES = itertools.count()


def sync_folder(folder: Path) -> None:
    """Flushes a folder's entries (the names renamed into it) to disk, where the platform can: after
    `write_atomically`, so that a power cut keeps the file under its new name. A no-op where folders cannot be
    opened (Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:  # some file systems refuse fsync on a folder; the file itself is flushed already
        pass
    finally:
        os.close(handle)


def read_private_file(path: str | os.PathLike, option: str, holds: str, binary: bool = False) -> str | bytes:
    """The text of a file that holds a secret (a password, a signing key), newlines at its ends dropped; with
    `binary`, its bytes (a key made with `head -c 32 /dev/urandom` need not be text).

    The rule, the same for every secret edgeclf reads from a file: a regular file that only its owner can
    read (mode 0600 or 0400), not empty. `option` (e.g. "--mqtt-password-file") and `holds` (e.g. "broker
    password") name the file and its content in the messages.

    Raises:
        ValueError: one line naming the option and the file, the rule it breaks, and the fix.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read it ({exc.strerror}). Write the {holds} into a file and run: "
                         f"chmod 600 {path}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{option} {path}: not a regular file. Give a file holding only the {holds}.")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{option} {path}: mode {stat.S_IMODE(info.st_mode):04o} lets other users read it; a file "
                         f"holding the {holds} must be its owner's only (0600 or 0400). Run: chmod 600 {path}")
    try:
        text = path.read_bytes().strip(b"\r\n") if binary else path.read_text(encoding="utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{option} {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}). Give a UTF-8 "
                         f"text file holding only the {holds}.") from exc
    if not text:
        raise ValueError(f"{option} {path} is empty; write the {holds} into it.")
    return text


def cache_root() -> Path:
    """Where edgeclf keeps its caches: $EDGECLF_CACHE, else ~/.cache/edgeclf."""
    return Path(os.environ.get("EDGECLF_CACHE") or Path.home() / ".cache" / "edgeclf")
