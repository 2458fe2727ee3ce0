"""The run folder's life: written in runs/.tmp-<id>/, renamed into place when complete, runs/latest repointed.

A failed or interrupted build removes its partial folder and never touches an earlier run; a build
killed outright (SIGKILL, a power cut) leaves a .tmp-* folder with an owner file, which the next build
removes once its owner is gone. Every step that makes a run visible is an atomic rename.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Callable

OWNER = ".owner"  # "<pid> <host>" of the build writing a .tmp-* folder
DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
RESUME_KEEP_DAYS = 14

Log = Callable[[str], None]


class DiskFull(OSError):
    """The disk (or a size limit) filled up while a build wrote; the message says what was kept."""


class RunFolder:
    """`with RunFolder(out, log) as run:` write into run.path, then `run.finish(name)`.

    Leaving the block with an exception removes the partial folder (a full disk becomes DiskFull, whose
    message says what was kept); leaving it without finish() leaves the folder for inspection.
    """

    def __init__(self, out: Path, log: Log) -> None:
        self.out, self.log = out, log
        self.path = out / f".tmp-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> "RunFolder":
        self.out.mkdir(parents=True, exist_ok=True)
        remove_abandoned(self.out, self.log)
        self.path.mkdir()
        (self.path / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}", encoding="utf-8")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise DiskFull(f"no space left while writing {exc.filename or 'the run'} ({exc.strerror}). The partial "
                           f"run was removed and earlier runs in {self.out} are untouched; free some space or pass "
                           "--out on another disk, then run again (add --resume to keep the finished epochs).") from exc

    def finish(self, name: str, point_latest: bool = True) -> Path:
        """Renames the complete run to out/<name> (or <name>-2, ...) and, unless told not to, repoints out/latest."""
        (self.path / OWNER).unlink()
        final = self.out / name
        suffix = 1
        while final.exists():
            suffix += 1
            final = self.out / f"{name}-{suffix}"
        os.replace(self.path, final)
        if point_latest:
            link = self.out / f".latest-{uuid.uuid4().hex[:8]}"
            link.symlink_to(final.name)
            os.replace(link, self.out / "latest")
        return final


def remove_abandoned(out: Path, log: Log) -> None:
    """Deletes .tmp-* folders of builds that died without cleaning up (killed, power cut).

    A folder whose owner process still runs on this host, or whose owner is unknown and which is
    younger than a day, is left alone: it may be another build in progress.
    """
    host = socket.gethostname()
    for folder in out.glob(".tmp-*"):
        try:
            pid, owner_host = (folder / OWNER).read_text(encoding="utf-8").split()
            alive = owner_host != host or _process_alive(int(pid))
        except (OSError, ValueError):
            alive = time.time() - folder.stat().st_mtime < 86400
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            log(f"  removed {folder.name}, left by a build that was killed")


def remove_stale_resume(out: Path, log: Log, keep_days: float = RESUME_KEEP_DAYS) -> None:
    """Deletes resume checkpoints no build has touched for `keep_days`.

    A build that fails or is interrupted keeps runs/.resume/<config hash>/ so that --resume can
    continue it; a config never built again would keep its weights there for good. A build in
    progress rewrites its checkpoint every epoch, so its folder is always recent.
    """
    cutoff = time.time() - keep_days * 86400
    for folder in (out / ".resume").glob("*"):
        try:
            newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
        except OSError:
            continue
        if newest < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            log(f"  removed {folder}: checkpoints of an interrupted build not resumed for {keep_days:g} days")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
