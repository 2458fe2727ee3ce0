"""Interrupted and starved builds: SIGINT/SIGKILL at several stages and a full disk lose nothing."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.runtime.preprocess import preprocess


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """400 JPEGs of 300-400 px in two classes: a data stage long enough to be killed in."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir()
        for i in range(200):
            side = int(rng.integers(300, 401))
            image = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (side, side))
            image[:, :, c] = np.clip(image[:, :, c].astype(int) + 80, 0, 255)
            cv2.imwrite(str(root / f"class{c}" / f"{i}.jpg"), image)
    return root


@pytest.fixture(scope="module")
def earlier(photos, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A finished run the failures below must leave untouched: (out, run, sha256 per file)."""
    from edgeclf.toolchain.build import build
    from edgeclf.toolchain.config import BuildConfig

    out = tmp_path_factory.mktemp("runs")
    run = build(BuildConfig().override({"data.source": str(photos), "model.name": "tiny", "model.size": 16,
                                        "train.epochs": 1, "export.out": str(out)})).run_dir
    return out, run, _hashes(run)


def _hashes(run: Path) -> dict:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()}


def _intact(out: Path, run: Path, hashes: dict) -> None:
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert visible == {run.name, "latest"}, visible  # nothing that looks like a finished run
    assert (out / "latest").resolve() == run.resolve()
    assert _hashes(run) == hashes


def _default_sigint() -> None:
    """Children of a background job inherit an ignored SIGINT (POSIX shells do that); give them Ctrl-C back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _build(photos: Path, out: Path, epochs: int = 60, preexec=_default_sigint) -> subprocess.Popen:
    args = [sys.executable, "-m", "edgeclf", "build", "--data", str(photos), "--model", "tiny", "--size", "16",
            "--epochs", str(epochs), "--patience", str(epochs), "--out", str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=preexec)


def _wait_for(proc: subprocess.Popen, marker: str, lines: list[str]) -> None:
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return
    raise AssertionError(f"the build ended before {marker!r}:\n{''.join(lines)}")


@pytest.mark.parametrize("sig, stage, delay", [
    (signal.SIGINT, "] train", 1.0),
    (signal.SIGKILL, "] data", 0.1),
    (signal.SIGKILL, "] train", 1.0),
    (signal.SIGKILL, "] export", 0.0),
])
def test_interrupted_build_leaves_no_finished_run_and_keeps_earlier_ones(photos, earlier, tmp_path, sig, stage, delay):
    out, run, hashes = earlier
    if stage == "] data":  # a cold cache, so the kill lands while images are being decoded into it
        os.environ["EDGECLF_CACHE"], previous = str(tmp_path / "cache"), os.environ.get("EDGECLF_CACHE")
    lines: list[str] = []
    try:
        proc = _build(photos, out, epochs=2 if stage == "] export" else 60)
        _wait_for(proc, stage, lines)
        time.sleep(delay)
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if stage == "] data":
            os.environ["EDGECLF_CACHE"] = previous
    output = "".join(lines) + rest
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in output and "--resume" in output, output[-2000:]
        assert not list(out.glob(".tmp-*"))  # Ctrl-C cleans up at once
    else:
        assert proc.returncode == -signal.SIGKILL
    _intact(out, run, hashes)


def test_after_kills_the_next_build_cleans_up_and_the_cache_is_valid(photos, tmp_path):
    from edgeclf.runtime.folder import scan
    from edgeclf.toolchain import cache

    out = tmp_path / "runs"
    os.environ["EDGECLF_CACHE"], previous = str(tmp_path / "cache"), os.environ.get("EDGECLF_CACHE")
    try:
        lines: list[str] = []
        killed = _build(photos, out)
        _wait_for(killed, "] data", lines)
        time.sleep(0.2)
        killed.kill()
        killed.wait()
        finished = _build(photos, out, epochs=1)
        output, _ = finished.communicate(timeout=300)
        assert finished.returncode == 0, output[-2000:]
        assert "left by a build that was killed" in output and not list(out.glob(".tmp-*"))
        assert (out / "latest" / "model_float32.tflite").is_file()
        folder = scan(photos)
        stats = cache.CacheStats()
        images = cache.load(photos, folder.files, 16, stats=stats)
        assert stats.decoded == 0 and stats.reused == len(folder.files)  # the rebuilt entry is complete
        for i in (0, len(images) // 2, len(images) - 1):
            assert np.array_equal(images.images[i], preprocess(images.paths[i], 16))
    finally:
        os.environ["EDGECLF_CACHE"] = previous


def test_a_full_disk_fails_clearly_removes_its_files_and_keeps_earlier_runs(photos, earlier):
    out, run, hashes = earlier

    def limit_file_size() -> None:  # every file this process writes stops at 16 KiB, like a full disk
        _default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    proc = _build(photos, out, epochs=2, preexec=limit_file_size)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output[-3000:]
    message = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(message) == 1 and "no space left while writing" in message[0] and "earlier runs" in message[0], output[-3000:]
    assert "Traceback" not in output
    assert not list(out.glob(".tmp-*"))
    _intact(out, run, hashes)


def test_resume_checkpoints_left_for_weeks_are_removed(tmp_path):
    """A config that failed once and was never rebuilt must not keep its weights under .resume forever."""
    from edgeclf.toolchain.runfolder import RESUME_KEEP_DAYS, remove_stale_resume

    old, recent = tmp_path / ".resume" / "0123456789abcdef", tmp_path / ".resume" / "fedcba9876543210"
    for folder in (old, recent):
        (folder / "train").mkdir(parents=True)
        (folder / "train" / "weights.npz").write_bytes(b"x")
    weeks_ago = time.time() - (RESUME_KEEP_DAYS + 1) * 86400
    for path in (old / "train" / "weights.npz", old / "train", old):
        os.utime(path, (weeks_ago, weeks_ago))
    # a folder whose newest file is recent stays, however old the folder itself is
    os.utime(recent, (weeks_ago, weeks_ago))
    messages = []
    remove_stale_resume(tmp_path, messages.append)
    assert not old.exists() and (recent / "train" / "weights.npz").is_file()
    assert len(messages) == 1 and str(old) in messages[0]
