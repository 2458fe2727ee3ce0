"""Loads a page in headless Chromium (Debian's `chromium`) and reports what rendered; skips without it."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: "
                                    "`make install-chromium` (Debian package chromium)")

# The flags that keep Chromium off the network and quiet in a sandbox with no display.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def rendered(page: Path) -> dict[str, int]:
    """Counts of <img> tags, images that really decoded in the browser, and SVG charts."""
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                              "--dump-dom", page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    charts = re.search(r'data-charts="(\d+)"', dom)
    return {"img_tags": len(re.findall(r"<img ", dom)), "loaded": int(loaded.group(1)) if loaded else -1,
            "charts": int(charts.group(1)) if charts else -1}
