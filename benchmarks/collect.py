"""Collecting a dataset through `edgeclf collect`'s page, as a user would, then building on it.

Three classes, each from its own clip (a slow pan over one of the photos scikit-image ships, as if the
camera were pointed at a different object): for each, `edgeclf collect` serves its page and headless
Chromium (Debian's, driven by Playwright) holds the class button at the default --rate. It lets go three
frames short of 100, as a user watching the count would, and tops the class up with taps (one frame
each): a release reaches collect some tens of ms after the finger lifts, so a hold timed to the frame
ends one frame long or short. Then every file is checked (decodes, the clip's frame size, no temporary
file visible) and `edgeclf build --data` trains a small CNN on the folder.

Figures: files_written against files_expected (3 x 100), bad_files (target 0), images_per_s while holding
(hold frames over hold seconds: the --rate the page asked for), collect_wall_s (first collect started to
last one stopped; target under 120 s), and the build's outcome. Prints one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeclf.runtime.collect import CollectOptions

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea")
FRAME = (320, 240)
SHORT = 3  # frames short of the target at which the button is let go (0.3 s of slack at 10 frames a second)
WAIT_HELD = """async n => { while (true) {
  const s = await (await fetch('/state.json', {cache: 'no-store'})).json();
  if (s.held >= n || s.error) return s.held;
  await new Promise(r => setTimeout(r, 20)); } }"""


def make_clip(path: Path, photo: str, seconds: float = 4.0, fps: int = 30) -> Path:
    """A clip panning and zooming slowly over one photo, so consecutive frames differ a little."""
    from skimage import data

    image = cv2.cvtColor(getattr(data, photo)(), cv2.COLOR_RGB2BGR)
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, FRAME)
    frames = int(seconds * fps)
    for i in range(frames):
        t = i / frames
        w = min(width, int(min(height, width) * (0.6 + 0.3 * t) * 4 / 3))
        h = min(height, w * 3 // 4)
        x = int((width - w) * (0.5 + 0.4 * np.sin(2 * np.pi * t)))
        y = int((height - h) * (0.5 + 0.4 * np.cos(2 * np.pi * t)))
        crop = image[y:y + h, x:x + w]
        writer.write(cv2.resize(crop, FRAME, interpolation=cv2.INTER_AREA))
    writer.release()
    return path


def start_collect(clip: Path, out: Path, labels: list[str]) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "EDGECLF_WEB_PASSWORD")}
    process = subprocess.Popen([sys.executable, "-m", "edgeclf.cli", "collect", "--source", str(clip), "--out", str(out),
                                "--labels", ",".join(labels), "--serve", "127.0.0.1:0"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=ROOT)
    seen, deadline = "", time.monotonic() + 60
    while "serving" not in seen and time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stderr], [], [], 1.0)[0]:
            seen += process.stderr.readline()
    match = re.search(r"serving (http://\S+)", seen)
    if not match:
        process.kill()
        raise SystemExit(f"edgeclf collect did not start: {seen}{process.communicate()[1]}")
    return process, match.group(1)


def stop_collect(process: subprocess.Popen) -> dict:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    if process.returncode != 0:
        raise SystemExit(f"edgeclf collect failed: {err}")
    return json.loads(out.strip().splitlines()[-1])["summary"]


def state(page) -> dict:
    return page.evaluate("async () => (await fetch('/state.json', {cache: 'no-store'})).json()")


def settled(page, label: str) -> int:
    """The class's count once nothing is held and every queued frame is written (two reads 0.3 s apart agree)."""
    last = None
    while True:
        now = state(page)
        if now["holding"] is None and now["counts"][label] == last:
            return last
        last = now["counts"][label]
        time.sleep(0.3)


def bad_files(folder: Path) -> list[str]:
    """Files under `folder` that `edgeclf build` would see and that are not whole frames of the clip."""
    bad = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        image = cv2.imread(str(path))
        if path.suffix != ".jpg" or image is None or image.shape[:2] != (FRAME[1], FRAME[0]):
            bad.append(str(path))
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 images per class and a 2-epoch build.")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: make install-chromium")
    from playwright.sync_api import sync_playwright

    per_class = 20 if args.quick else 100
    rate = CollectOptions().rate  # the default
    work = Path(tempfile.mkdtemp(prefix="edgeclf-collect-bench-"))
    try:
        clips = {photo: make_clip(work / f"{photo}.mp4", photo) for photo in PHOTOS}
        photos = work / "photos"
        holds, summaries, taps = [], [], 0
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            started = time.perf_counter()
            for photo in PHOTOS:
                process, url = start_collect(clips[photo], photos, list(PHOTOS))
                try:
                    page = browser.new_page(viewport={"width": 800, "height": 600})
                    page.goto(url)
                    button = f'.cls[data-label="{photo}"]'
                    page.wait_for_selector(button)
                    page.wait_for_function("() => document.getElementById('stream').naturalWidth > 0", timeout=30000)
                    page.hover(button)
                    t0 = time.perf_counter()
                    page.mouse.down()
                    # Released as a user watching the count would, SHORT frames early; then topped up with taps
                    # (one frame each), since a release reaches collect some tens of ms after the finger lifts.
                    page.evaluate(WAIT_HELD, per_class - SHORT)  # watched in the page: no round trip per look
                    page.mouse.up()
                    hold = time.perf_counter() - t0
                    while (count := settled(page, photo)) < per_class:
                        page.click(button)
                        taps += 1
                    holds.append(hold)
                    page.close()
                    summaries.append(stop_collect(process))
                finally:
                    if process.poll() is None:
                        process.kill()
            collect_wall = time.perf_counter() - started
            browser.close()
        counts = {photo: len(list((photos / photo).glob("*.jpg"))) for photo in PHOTOS}
        written = sum(counts.values())
        bad = bad_files(photos)
        t0 = time.perf_counter()
        build = subprocess.run([sys.executable, "-m", "edgeclf.cli", "build", "--data", str(photos), "--model", "cnn",
                                "--size", "32", "--epochs", "2" if args.quick else "5", "--out", str(work / "runs"),
                                "--json"], capture_output=True, text=True, cwd=ROOT)
        build_s = time.perf_counter() - t0
        accuracy = None
        if build.returncode == 0:
            accuracy = json.loads(build.stdout)["artifacts"]["float32"]["accuracy"]
        else:
            print(build.stderr[-2000:], file=sys.stderr)
        result = {"classes": len(PHOTOS), "per_class_expected": per_class, "rate": rate,
                  "hold_s_per_class": [round(h, 2) for h in holds], "counts": counts, "taps": taps, "files_written": written,
                  "files_expected": per_class * len(PHOTOS), "bad_files": len(bad),
                  "images_per_s": round((written - taps) / sum(holds), 2), "collect_wall_s": round(collect_wall, 1),
                  "collect_under_2_min": collect_wall < 120, "build_ok": build.returncode == 0,
                  "build_s": round(build_s, 1), "build_float32_accuracy": accuracy,
                  "load_avg_1min": round(os.getloadavg()[0], 2)}
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
