"""Input pipeline speed: edgeclf's cached tf.data pipeline vs the tutorials' ImageDataGenerator.

On a generated folder of JPEGs (crops of the photos scikit-image ships, 200-400 px, 5 classes),
measures images/s of one training epoch's input (no model), batch 32, 224x224, with the same
augmentation (rotation 20 degrees, shifts 0.2, zoom 0.2, horizontal flip):

- edgeclf cold: first epoch, decoding every JPEG into the image cache (empty cache) and streaming it;
- edgeclf warm: second epoch, streaming from the cache;
- ImageDataGenerator.flow_from_directory configured as the common MobileNetV2 tutorial writes it
  (preprocess_input, shear 0.2 degrees, fill 'nearest'), iterated for one epoch.

edgeclf's augmentation also draws a contrast factor, which ImageDataGenerator does not: extra work on
our side. Then peak RSS of the edgeclf pipeline (cold + warm epoch, own process) on the folder and on
one 4x larger: the growth shows whether memory follows the folder size. TensorFlow's import sets most
of that peak, so the pipeline's own peak above the post-import RSS is printed too.

Large JPEGs, cold cache: a folder of 24 MP phone-sized photos (the scikit-image photos upscaled to
6000x4000, JPEG quality 90) decoded and resized to 224x224 as filling a cold cache does (a thread pool,
one worker per core), each way in its own process: full decode then resize (what edgeclf did before)
vs decode at a reduced JPEG scale then the same resize (`edgeclf.runtime.preprocess` now). Reported
side by side: images/s, peak RSS above the post-import baseline, their ratios, and how far the two
tensors differ (max and mean absolute difference, 0-255).

Prints one JSON object on its last line. --quick: 600 and 2,400 images, 6 large JPEGs (30 without).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE, BATCH, CLASSES = 224, 32, 5


def edgeclf_epochs(root: Path, cache_dir: Path) -> tuple[float, float, int]:
    """(cold images/s, warm images/s, images) for edgeclf's pipeline with an empty cache."""
    os.environ["EDGECLF_CACHE"] = str(cache_dir)
    from edgeclf.runtime.folder import scan
    from edgeclf.toolchain import cache
    from edgeclf.toolchain._tf import tf
    from edgeclf.toolchain.pipeline import Augmentation, make_dataset

    tf()  # a build has imported TensorFlow before its data stage; so has the baseline below
    start = time.perf_counter()
    folder = scan(root)
    images = cache.load(root, folder.files, SIZE)
    dataset = make_dataset(images.images, images.labels, BATCH, True, 0, Augmentation.level("strong"))
    count = sum(int(x.shape[0]) for x, _ in dataset)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    assert sum(int(x.shape[0]) for x, _ in dataset) == count
    warm = time.perf_counter() - start
    return count / cold, count / warm, count


def generator_epoch(root: Path) -> tuple[float, int]:
    """images/s of one epoch of ImageDataGenerator.flow_from_directory as the tutorial configures it."""
    import tf_keras

    generator = tf_keras.preprocessing.image.ImageDataGenerator(
        preprocessing_function=tf_keras.applications.mobilenet_v2.preprocess_input,
        rotation_range=20, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
        horizontal_flip=True, fill_mode="nearest")
    flow = generator.flow_from_directory(str(root), target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="sparse",
                                         seed=0)
    start = time.perf_counter()
    count = sum(len(next(flow)[1]) for _ in range(len(flow)))
    return count / (time.perf_counter() - start), count


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(root: Path, cache_dir: Path) -> tuple[float, float]:
    """(peak RSS, peak RSS above the post-import baseline) of a process running the edgeclf
    pipeline's cold and warm epochs on root, in MB."""
    proc = subprocess.run([sys.executable, __file__, "--rss-child", str(root), str(cache_dir)],
                          capture_output=True, text=True, check=True)
    peak, pipeline = proc.stdout.strip().splitlines()[-1].split()
    return float(peak), float(pipeline)


def make_large_jpegs(root: Path, count: int) -> Path:
    """root/<i>.jpg: `count` 6000x4000 JPEGs (24 MP, quality 90), upscaled from the scikit-image photos."""
    import cv2
    import numpy as np
    from skimage import data

    from _photos import PHOTOS

    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = getattr(data, PHOTOS[i % len(PHOTOS)])()
        photo = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo
        if i // len(PHOTOS) % 2:
            photo = photo[:, ::-1]
        big = cv2.resize(np.ascontiguousarray(photo), (6000, 4000), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / f"{i:03d}.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def decode_folder(root: Path, mode: str) -> list:
    """Every JPEG of root at SIZE x SIZE on a thread pool (one worker per core, as the cache fills):
    "full" decodes every pixel then resizes, "reduced" is edgeclf's preprocess (reduced JPEG scale)."""
    from concurrent.futures import ThreadPoolExecutor

    from edgeclf.runtime.preprocess import load_image, preprocess, resize

    def one(path: Path):
        return resize(load_image(path), SIZE) if mode == "full" else preprocess(path, SIZE)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, sorted(root.glob("*.jpg"))))


def large_jpegs(root: Path) -> dict:
    """Full vs reduced decoding of root's large JPEGs, each in a fresh process; and their tensor difference."""
    import numpy as np

    runs = {}
    for mode in ("full", "reduced"):
        proc = subprocess.run([sys.executable, __file__, "--large-child", mode, str(root)], capture_output=True,
                              text=True, check=True)
        runs[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    full = np.stack(decode_folder(root, "full")).astype(np.int16)
    reduced = np.stack(decode_folder(root, "reduced")).astype(np.int16)
    difference = np.abs(full - reduced)
    return {
        "large_jpeg_images": runs["full"]["images"], "large_jpeg_side": "6000x4000",
        "large_jpeg_full_images_per_s": round(runs["full"]["images_per_s"], 2),
        "large_jpeg_reduced_images_per_s": round(runs["reduced"]["images_per_s"], 2),
        "large_jpeg_speedup": round(runs["reduced"]["images_per_s"] / runs["full"]["images_per_s"], 2),
        "large_jpeg_full_peak_above_import_mb": round(runs["full"]["peak_mb"], 1),
        "large_jpeg_reduced_peak_above_import_mb": round(runs["reduced"]["peak_mb"], 1),
        "large_jpeg_memory_ratio": round(runs["reduced"]["peak_mb"] / runs["full"]["peak_mb"], 3),
        "large_jpeg_tensor_max_abs_diff": int(difference.max()),
        "large_jpeg_tensor_mean_abs_diff": round(float(difference.mean()), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 and 2,400 images instead of 3,200 and 12,800.")
    parser.add_argument("--rss-child", nargs=2, metavar=("ROOT", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--large-child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_child:
        import edgeclf.runtime.preprocess  # noqa: F401 - imports outside the measured peak

        before = _status_mb("VmRSS")
        start = time.perf_counter()
        count = len(decode_folder(Path(args.large_child[1]), args.large_child[0]))
        seconds = time.perf_counter() - start
        print(json.dumps({"images": count, "images_per_s": count / seconds, "peak_mb": _status_mb("VmHWM") - before}))
        return 0
    if args.rss_child:
        from edgeclf.toolchain._tf import tf

        tf()
        before = _status_mb("VmRSS")
        try:  # reset the high-water mark so the pipeline's own peak is visible under TensorFlow's import peak
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        edgeclf_epochs(Path(args.rss_child[0]), Path(args.rss_child[1]))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _status_mb("VmHWM") - before)
        return 0
    from _photos import make_photo_folder

    per_class = 120 if args.quick else 640
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = make_photo_folder(tmp / "small", per_class, seed=0, sides=(200, 400))
        large = make_photo_folder(tmp / "large", 4 * per_class, seed=1, sides=(200, 400))
        cold, warm, count = edgeclf_epochs(small, tmp / "cache-main")
        baseline, baseline_count = generator_epoch(small)
        assert baseline_count == count, (baseline_count, count)
        rss_small, pipeline_small = peak_rss_mb(small, tmp / "cache-small")
        rss_large, pipeline_large = peak_rss_mb(large, tmp / "cache-large")
        large_figures = large_jpegs(make_large_jpegs(tmp / "large_jpegs", 6 if args.quick else 30))
    figures = {
        "images": count, "images_4x": 4 * count, "size": SIZE, "batch": BATCH,
        "edgeclf_cold_images_per_s": round(cold, 1), "edgeclf_warm_images_per_s": round(warm, 1),
        "image_data_generator_images_per_s": round(baseline, 1),
        "cold_speedup": round(cold / baseline, 2), "warm_speedup": round(warm / baseline, 2),
        "peak_rss_mb": round(rss_small, 1), "peak_rss_mb_4x": round(rss_large, 1),
        "rss_growth": round(rss_large / rss_small, 3),
        "pipeline_peak_above_import_mb": round(pipeline_small, 1), "pipeline_peak_above_import_mb_4x": round(pipeline_large, 1),
        **large_figures,
        "targets": "warm_speedup >= 10, cold_speedup >= 1.5, rss_growth < 1.5",
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
