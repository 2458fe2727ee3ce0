"""Keeps the interpreter's native INFO chatter off the user's console.

LiteRT and tflite-runtime print "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++
straight to file descriptor 2 the first time a process allocates a model, and no log level or
environment variable turns that off. Interpreter creation runs inside `quiet_native_stderr()`, which
points fd 2 at a temporary file for the block and then replays every line except the INFO ones, so
warnings and errors still reach the user.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

_CHATTER = re.compile(r"^INFO: ")
_LOCK = threading.Lock()  # fd 2 is process-wide: one redirection at a time


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Holds back native INFO lines written to fd 2 inside the block; replays every other line."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to keep quiet
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                _replay(capture.read().decode("utf-8", errors="replace"))


def _replay(text: str) -> None:
    for line in text.splitlines(keepends=True):
        if not _CHATTER.match(line):
            sys.stderr.write(line)
    sys.stderr.flush()
