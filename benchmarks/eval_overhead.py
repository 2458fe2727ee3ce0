"""Is evaluating a folder dominated by JPEG decoding, not by Python overhead around the interpreter?

Generates 1,000 JPEGs (320x240, smooth shapes and noise) in 10 class folders and evaluates a small
model on them: decode + resize time vs inference time, batched (what `edgeclf eval` does) and one
image per invoke (the naive loop). Prints one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgeclf.runtime.evaluate import evaluate
from edgeclf.runtime.folder import load, scan
from edgeclf.runtime.model import Model

MODEL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "digits_tiny" / "model_int8.tflite"


def make_folder(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
        cv2.circle(image, (int(rng.integers(40, 280)), int(rng.integers(40, 200))), 30, (255, 255, 255), -1)
        folder = root / str(i % 10)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="same 1,000 images (already under a minute)")
    parser.parse_args()
    model = Model(MODEL, num_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root, 1000)
        folder = scan(root)
        t0 = time.perf_counter()
        loaded = load(folder.files, model.input_size)
        decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate(model, loaded.images, loaded.labels)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for image in loaded.images:
        model.dequantize(model.invoke(model.prepare(image)))
    loop = time.perf_counter() - t0
    print(json.dumps({
        "benchmark": "eval_overhead", "images": int(len(loaded.labels)), "model": MODEL.name,
        "decode_resize_s": round(decode, 3), "inference_batched_s": round(batched, 3),
        "inference_one_per_invoke_s": round(loop, 3),
        "inference_share_of_eval": round(batched / (batched + decode), 3),
        "batched_vs_loop_speedup": round(loop / batched, 2),
    }))


if __name__ == "__main__":
    main()
