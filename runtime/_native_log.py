"""Keeps native libraries' chatter (LiteRT's INFO line, TensorFlow's C++ logs) off the user's console.

LiteRT and tflite-runtime print "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++
straight to file descriptor 2 the first time a process allocates a model, and no log level or
environment variable turns that off. Interpreter creation runs inside `quiet_native_stderr()`, which
points fd 2 at a temporary file for the block and then replays every line except the INFO ones, so
warnings and errors still reach the user. `edgeclf build`, which loads TensorFlow, filters its whole
stderr instead (`filter_process_stderr`).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import subprocess
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


# What TensorFlow 2.21 prints from C++ on every CPU machine, none of it the user's business: absl's
# preamble, INFO/WARNING lines in absl's format (TF_CPP_MIN_LOG_LEVEL no longer reaches them), the
# cuInit error of a machine without a GPU, the converter's calibration summary and LiteRT's INFO line.
TENSORFLOW_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] "
    r"|E\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] failed call to cuInit"
    r"|fully_quantize: \d+, inference_type: "
    r"|INFO: ")

_FILTER = r"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; keep forwarding its last words
noise = re.compile(sys.argv[1].encode())
for line in iter(sys.stdin.buffer.readline, b""):
    if not noise.match(line):
        os.write(2, line)
"""


def filter_process_stderr(noise: re.Pattern = TENSORFLOW_NOISE) -> None:
    """From now on, every line this process and its children write to fd 2 passes through a small
    filter process that drops lines matching `noise` and forwards the rest as they come.

    A process, not a thread: when a native library aborts this process, the filter still forwards
    the last lines it was given. Does nothing when stderr is not the process's fd 2 (tests, CliRunner).
    """
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    child = subprocess.Popen([sys.executable, "-c", _FILTER, noise.pattern], stdin=subprocess.PIPE)
    original = os.dup(2)
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()

    def restore() -> None:  # at exit: hand fd 2 back, which ends the filter's input, and let it finish
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild still holds the pipe: do not hang the exit
            pass

    atexit.register(restore)
