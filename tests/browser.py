"""Loads a page in headless Chromium (Debian's `chromium`) and reports what rendered; skips without it."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: "
                                    "`make install-chromium` (Debian package chromium)")

# The flags that keep Chromium off the network and quiet in a sandbox with no display.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def rendered(page: Path, width: int | None = None) -> dict:
    """Counts of <img> tags, images that really decoded in the browser and SVG charts, how many pixels the page
    is wider than a `width` px window (0 or less: no sideways scrolling), and the DOM as rendered."""
    size = [f"--window-size={width},900"] if width else []
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([CHROMIUM, *FLAGS, *size, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                              "--dump-dom", page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    charts = re.search(r'data-charts="(\d+)"', dom)
    overflow = re.search(r'data-overflow-x="(-?\d+)"', dom)
    return {"img_tags": len(re.findall(r"<img ", dom)), "loaded": int(loaded.group(1)) if loaded else -1,
            "charts": int(charts.group(1)) if charts else -1,
            "overflow_x": int(overflow.group(1)) if overflow else 10**6, "dom": dom}


def screenshot(page: Path, out: Path, width: int = 390, height: int = 1100) -> None:
    """A PNG of the top of the page as a `width` px wide window shows it, posterized and compressed so that it
    stays a few tens of KB in the repository."""
    import cv2

    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        subprocess.run([CHROMIUM, *FLAGS, "--hide-scrollbars", f"--window-size={width},{height}",
                        f"--user-data-dir={profile}", "--virtual-time-budget=5000", f"--screenshot={raw}",
                        page.resolve().as_uri()], capture_output=True, timeout=120, check=True)
        image = cv2.imread(str(raw))
    step = 32  # 8 levels per channel: text and charts stay sharp, the PNG shrinks about 3x
    posterized = np.clip(np.round(image / step) * step, 0, 255).astype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), posterized, [cv2.IMWRITE_PNG_COMPRESSION, 9])
