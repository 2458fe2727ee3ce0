"""The collect page in a real headless Chromium (Debian's, driven by Playwright) against a video source:
tap, press-and-hold, number keys, undo, a new class, review and assign; then the files on disk, also
after the collect process is killed with SIGKILL in the middle of a hold."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from tests.browser import CHROMIUM
from tests.runtime.test_collect import ROOT, decodes, jpegs, make_clip

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: "
                                "`make install-chromium` (Debian package chromium)")
RATE = 4  # frames a second while held: a 2 s hold is the press's frame and one every 0.25 s from 0.4 s on (8 in all);
# one either way is 0.25 s
SCREENSHOT = ROOT / "docs" / "img" / "collect.png"  # rewritten when EDGECLF_UPDATE_SCREENSHOTS=1


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Collect:
    """`edgeclf collect` in its own process, serving on a free loopback port."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "EDGECLF_WEB_PASSWORD")}
        env["PYTHONFAULTHANDLER"] = "1"  # a collect that never starts shows where it stuck (SIGABRT below)
        self.process = subprocess.Popen([sys.executable, "-m", "edgeclf.cli", "collect", "--serve", "127.0.0.1:0", *args],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=ROOT)
        seen, deadline = "", time.monotonic() + 60
        while "serving" not in seen and time.monotonic() < deadline and self.process.poll() is None:
            if select.select([self.process.stderr], [], [], 1.0)[0]:
                seen += self.process.stderr.readline()
        if "serving" not in seen:
            self.process.send_signal(signal.SIGABRT)
            seen += self.process.communicate(timeout=30)[1]
        match = re.search(r"serving (http://\S+)", seen)
        assert match, seen
        self.url = match.group(1)

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])["summary"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _count(page, label: str) -> int:
    return int(page.locator(f'.cls[data-label="{label}"] [data-count]').inner_text())


def _wait_count(page, label: str, expected: int) -> None:
    page.wait_for_function(f"""() => {{ const e = document.querySelector('.cls[data-label="{label}"] [data-count]');
                                      return e && Number(e.textContent) === {expected}; }}""", timeout=15000)


def _settled(page, label: str) -> int:
    """The count once a hold's last frames are written and shown (two polls in a row agree)."""
    last, same = -1, 0
    while same < 2:
        page.wait_for_timeout(800)
        now = _count(page, label)
        same, last = (same + 1, now) if now == last else (0, now)
    return last


def _hold(page, selector: str, seconds: float) -> None:
    page.hover(selector)
    page.mouse.down()
    page.wait_for_timeout(seconds * 1000)
    page.mouse.up()


def test_tap_hold_keys_undo_and_new_class(browser, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=75, size=(320, 240))
    photos = tmp_path / "photos"
    collect = Collect("--source", str(clip), "--out", str(photos), "--labels", "cat,dog", "--rate", str(RATE))
    try:
        page = browser.new_page(viewport={"width": 900, "height": 480})
        page.goto(collect.url)
        page.wait_for_selector('.cls[data-label="dog"]')
        page.wait_for_function("() => document.getElementById('stream').naturalWidth > 0", timeout=15000)

        page.click('.cls[data-label="cat"]')  # a tap: one frame
        _wait_count(page, "cat", 1)
        _hold(page, '.cls[data-label="dog"]', 2.0)
        held = _settled(page, "dog")
        assert abs(held - 2.0 * RATE) <= 1, held

        page.keyboard.press("1")  # a number key: one more frame into the first class
        _wait_count(page, "cat", 2)
        page.keyboard.press("u")  # undo takes back that key press only
        _wait_count(page, "cat", 1)
        page.click("#undo")  # and then the whole hold
        _wait_count(page, "dog", 0)
        _hold(page, '.cls[data-label="dog"]', 1.0)
        dog = _settled(page, "dog")

        page.fill("#newlabel", "bird")
        page.click("#add")
        page.wait_for_selector('.cls[data-label="bird"]')
        page.keyboard.press("3")
        _wait_count(page, "bird", 1)
        page.wait_for_function("() => { const i = [...document.querySelectorAll('#recent img')]; "
                               "return i.length >= 3 && i[0].alt === 'bird' && i.every(x => x.naturalWidth > 0); }")
        shot = tmp_path / "collect.png"
        page.screenshot(path=str(shot))
        if os.environ.get("EDGECLF_UPDATE_SCREENSHOTS") == "1":
            image = cv2.imread(str(shot))
            SCREENSHOT.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(SCREENSHOT), cv2.resize(image, (image.shape[1] * 2 // 3, image.shape[0] * 2 // 3),
                                                    interpolation=cv2.INTER_AREA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        summary = collect.stop()
    finally:
        collect.kill()
    counts = {label: len(jpegs(photos / label)) for label in ("cat", "dog", "bird")}
    assert counts == {"cat": 1, "dog": dog, "bird": 1} and summary["counts"] == counts
    assert abs(dog - 1.0 * RATE) <= 1
    files = jpegs(photos)
    assert all(decodes(p) and cv2.imread(str(p)).shape == (240, 320, 3) for p in files)
    # The captured frames are the clip's: its orange bar (BGR 40, 200, 255) is in every one.
    assert all(np.all(np.abs(cv2.imread(str(p))[120, 0].astype(int) - (40, 200, 255)) < 40) for p in files)
    assert sorted(p.name for p in photos.iterdir()) == ["bird", "cat", "dog"]
    result = CliRunner().invoke(cli, ["data", str(photos), "--json"])
    assert result.exit_code == 0, result.output
    survey = json.loads(result.output)
    assert survey["classes"] == ["bird", "cat", "dog"] and survey["skipped"] == []


def test_touch_on_a_phone(browser, tmp_path):
    """A finger, not a mouse: a tap is one frame, also on a slow network; a touch held for a second records (pointer
    events)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=75, size=(320, 240))
    photos = tmp_path / "photos"
    collect = Collect("--source", str(clip), "--out", str(photos), "--labels", "cat,dog", "--rate", str(RATE))
    try:
        context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
        page = context.new_page()
        page.goto(collect.url)
        page.wait_for_selector('.cls[data-label="dog"]')
        touch = context.new_cdp_session(page)
        # A phone on a poor network: each request 0.4 s on its way, so the release reaches the server 0.8 s after
        # the press (3 periods): still one frame, because only the page knows the finger left at once.
        touch.send("Network.enable")
        slow = {"offline": False, "downloadThroughput": -1, "uploadThroughput": -1}
        touch.send("Network.emulateNetworkConditions", {**slow, "latency": 400})
        page.tap('.cls[data-label="cat"]')
        _wait_count(page, "cat", 1)
        page.wait_for_timeout(1500)  # a second frame would have come by now
        assert _count(page, "cat") == 1
        touch.send("Network.emulateNetworkConditions", {**slow, "latency": 0})
        box = page.locator('.cls[data-label="dog"]').bounding_box()
        point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
        page.wait_for_timeout(1000)
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        held = _settled(page, "dog")
        assert abs(held - 1.0 * RATE) <= 1, held
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits the phone's width
        summary = collect.stop()
    finally:
        collect.kill()
    assert summary["counts"] == {"cat": 1, "dog": held} == {k: len(jpegs(photos / k)) for k in ("cat", "dog")}


def test_killed_mid_hold_leaves_only_whole_jpegs(browser, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=75, size=(640, 480))
    photos = tmp_path / "photos"
    collect = Collect("--source", str(clip), "--out", str(photos), "--labels", "cat", "--rate", "30", "--quality", "100")
    try:
        page = browser.new_page()
        page.goto(collect.url)
        page.wait_for_selector('.cls[data-label="cat"]')
        page.hover('.cls[data-label="cat"]')
        page.mouse.down()
        page.wait_for_function("""() => Number(document.querySelector('[data-count]').textContent) >= 10""",
                               timeout=20000)
        os.kill(collect.process.pid, signal.SIGKILL)  # mid-hold: frames are being encoded and written
        collect.process.wait(timeout=10)
        page.mouse.up()
    finally:
        collect.kill()
    files = jpegs(photos)
    assert len(files) >= 10 and all(decodes(p) for p in files)
    visible = sorted(p for p in (photos / "cat").iterdir() if not p.name.startswith("."))
    assert visible == files  # nothing but whole JPEGs is visible; a temporary file is hidden (.name.tmp)
    result = CliRunner().invoke(cli, ["data", str(photos), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["skipped"] == [], result.output
    # The next run removes any temporary file the kill left behind.
    again = Collect("--source", str(clip), "--out", str(photos))
    again.stop()
    assert not [p for p in (photos / "cat").iterdir() if p.name.endswith(".tmp")]


def test_review_grid_assigns_and_discards(browser, tmp_path, tiny_int8):
    clip = make_clip(tmp_path / "clip.mp4", frames=12)
    review = tmp_path / "review"
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(clip), "-q", "--review", str(review),
                                      "--review-below", "1.0", "--review-every", "0", "--max-frames", "4"])
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in review.glob("*.jpg"))
    assert len(names) == 4
    photos = tmp_path / "photos"
    collect = Collect("--review", str(review), "--out", str(photos), "--labels", "cat,dog")
    try:
        page = browser.new_page()
        page.goto(collect.url)
        page.wait_for_function("() => document.querySelectorAll('#grid .item img').length === 4 && "
                               "[...document.querySelectorAll('#grid .item img')].every(i => i.naturalWidth > 0)")
        assert "model: " in page.locator("#grid .item .guess").first.inner_text()
        page.click(f'.item[data-name="{names[0]}"] button[data-assign="dog"]')  # one click
        page.wait_for_function("() => document.querySelectorAll('#grid .item').length === 3")
        page.focus(f'.item[data-name="{names[1]}"]')
        page.keyboard.press("1")  # one key: the first class
        page.wait_for_function("() => document.querySelectorAll('#grid .item').length === 2")
        page.focus(f'.item[data-name="{names[2]}"]')
        page.keyboard.press("x")  # discard
        page.wait_for_function("() => document.querySelectorAll('#grid .item').length === 1")
        collect.stop()
    finally:
        collect.kill()
    assert [p.name for p in jpegs(photos / "dog")] == [f"{names[0]}.jpg"]
    assert [p.name for p in jpegs(photos / "cat")] == [f"{names[1]}.jpg"]
    assert sorted(p.name for p in review.iterdir()) == [f"{names[3]}.jpg", f"{names[3]}.json"]
