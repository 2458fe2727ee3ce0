"""`edgeclf build` on a folder holding files whose header claims a huge size: each is skipped and listed in the
report with its reason, the build goes on, and the process's peak RSS over its post-import baseline stays bounded.
The hostile files and the measuring wrapper are tests/runtime/test_hostile_images.py's."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))

from test_hostile_images import HOSTILE, REFUSED_BY_FORMAT, RSS_BOUND_MB, run_measured  # noqa: E402

# TensorFlow's import sets most of a build's RSS; it is in the baseline. Training the tiny model on 16x16 images
# adds ~100 MB more; a single hostile file decoded would add >= 800 MB.
BUILD_PRELOAD = "tensorflow,tf_keras,edgeclf.cli,edgeclf.toolchain.build"


def test_build_skips_hostile_files_lists_them_and_finishes(tmp_path, fixtures):
    data = tmp_path / "data"
    for label in ("3", "7"):
        (data / label).mkdir(parents=True)
        for image in sorted((fixtures / "digits_val" / label).iterdir())[:12]:
            shutil.copy(image, data / label / image.name)
    for name, make in {**HOSTILE, **REFUSED_BY_FORMAT}.items():
        (data / "3" / name).write_bytes(make())
    out = tmp_path / "runs"
    args = ["build", "--data", data, "--model", "tiny", "--size", "16", "--epochs", "1", "--batch-size", "4",
            "--max-pixels", "40000000", "--out", out, "--json"]
    done, measured = run_measured(args, tmp_path, preload=BUILD_PRELOAD)
    assert measured["code"] == 0, done.stderr[-3000:]
    report = json.loads((out / "latest" / "report.json").read_text())
    reasons = {Path(item["path"]).name: item["reason"] for item in report["dataset"]["skipped"]}
    for name in HOSTILE:
        assert "is over the pixel budget of 40 MP (--max-pixels 40000000)" in reasons[name], (name, reasons.get(name))
    assert "a GIF image" in reasons["bomb_gif.jpg"]
    assert len(reasons) == len(HOSTILE) + len(REFUSED_BY_FORMAT)
    assert "max_pixels: 40000000" in (out / "latest" / "config.yaml").read_text()
    grown = measured["peak_mb"] - measured["baseline_mb"]
    assert grown < RSS_BOUND_MB, f"peak RSS {measured['peak_mb']:.0f} MB is {grown:.0f} MB over the baseline"


def test_max_pixels_in_the_build_config_is_checked():
    import pytest

    from edgeclf.toolchain.config import BuildConfig, ConfigError

    assert BuildConfig().data.max_pixels == 50_000_000
    assert BuildConfig().override({"data.max_pixels": 1000}).data.max_pixels == 1000
    with pytest.raises(ConfigError, match=r"--max-pixels must be an integer in \[1, 268435456\] \(pixels of one "
                                          r"image\); received -5. Use e.g. --max-pixels 50000000."):
        BuildConfig().override({"data.max_pixels": -5})


def test_the_image_cache_holds_the_tensor_eval_and_classify_compute(tmp_path):
    """A large JPEG decoded at a reduced scale: the training cache stores exactly what the runtime's preprocess
    gives, so training and the device see the same tensor."""
    import cv2
    import numpy as np

    from edgeclf.runtime.preprocess import preprocess
    from edgeclf.toolchain import cache
    from test_hostile_images import _photo_like

    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / "photo.jpg"
    cv2.imwrite(str(path), _photo_like(1600, 2000))
    cached = cache.load(tmp_path, [(path, 0)], 96)
    assert np.array_equal(cached.images[0], preprocess(path, 96))
