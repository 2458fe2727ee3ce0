"""How much does the camera pipeline add on top of its slowest stage? And what does decoding JPEGs at a reduced
scale buy for an image folder of large photos?

1. Video: generates a 640x480 video panning over the photos scikit-image ships (astronaut, coffee, chelsea),
   then runs `edgeclf camera`'s loop (capture thread, preprocess, invoke, post) over it for an int8
   MobileNetV2 0.35@96 and a float32 1.0@224, and in the same run times the bare invoke of each model. The
   capture thread decodes and resizes the next frames while the model runs, so the pipeline is bounded by the
   slower of the two: the model (invoke) or the decoder (capture + preprocess medians). Each model's row
   names that bottleneck and the pipeline's FPS as a share of it (fps_ratio_vs_bottleneck); also the ceiling
   any pipeline has on this machine: the CPU time of all stages of a frame spread over every core.
2. Image folder: large JPEGs (4000x3000, 12 MP, as phones and the Pi HQ camera write them) played through the
   same loop for the int8 0.35@96 model, decoded at full size and then at a reduced scale (libjpeg's 1/2, 1/4,
   1/8: what `edgeclf camera --source FOLDER` does when nothing is cropped), side by side in one run.

Prints one JSON object on its last line. The 1-minute load average is recorded: on a shared, busy machine the
threads of a pipeline wait for a core and its ratio to the per-stage medians falls; compare quiet runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _mobilenets import build_models
from edgeclf.runtime.bench import LatencyStats, time_invokes
from edgeclf.runtime.model import Model
from edgeclf.runtime.sources import open_source
from edgeclf.runtime.stream import StreamOptions, run_stream

THREADS = 1
PHOTO_SIZE = (4000, 3000)  # 12 MP


def _strip() -> np.ndarray:
    from skimage import data

    return np.concatenate([cv2.resize(image, (640, 480)) for image in (data.astronaut(), data.coffee(), data.chelsea())],
                          axis=1)


def make_video(path: Path, frames: int) -> None:
    strip = _strip()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    span = strip.shape[1] - 640
    for i in range(frames):
        x = int(span * (0.5 - 0.5 * np.cos(2 * np.pi * i / frames)))  # pan across and back
        writer.write(cv2.cvtColor(strip[:, x:x + 640], cv2.COLOR_RGB2BGR))
    writer.release()


def make_photos(folder: Path, count: int) -> int:
    """`count` 12 MP JPEGs: crops of the strip enlarged to 4000x3000, with sensor-like noise so that they
    compress (and decode) like photos rather than like smooth enlargements. Returns the mean file size."""
    folder.mkdir()
    strip, rng, sizes = _strip(), np.random.default_rng(0), []
    for i in range(count):
        x = (i * 211) % (strip.shape[1] - 640)
        image = cv2.resize(strip[:, x:x + 640], PHOTO_SIZE, interpolation=cv2.INTER_CUBIC)
        noisy = np.clip(image.astype(np.int16) + rng.normal(0, 6, image.shape).astype(np.int16), 0, 255)
        path = folder / f"IMG_{i:04d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(noisy.astype(np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        sizes.append(path.stat().st_size)
    return int(np.mean(sizes))


def video_row(model: Model, video: Path) -> dict:
    zeros = model.prepare(np.zeros((*model.input_size, 3), np.uint8))
    first = time_invokes(model, zeros, 200, 1.0, 10)  # the bound before and after the pipeline, same run
    cpu_before = time.process_time()
    summary = run_stream(model, open_source(str(video)), StreamOptions())
    # Cores this process had while the pipeline ran (CPU seconds per second): a pipeline whose threads had to
    # wait for a busy machine's cores shows it here, beside a ratio that fell for that reason.
    cores_used = (time.process_time() - cpu_before) / summary.seconds if summary.seconds else 0.0
    second = time_invokes(model, zeros, 200, 1.0, 10)
    bound = 1000.0 / LatencyStats.of(np.concatenate([first, second])).median_ms
    stages = summary.as_dict()["stage_ms"]
    # The capture thread decodes and resizes the next frames while the model runs: its own bound.
    source_bound = 1000.0 / (stages["capture"]["median"] + stages["preprocess"]["median"])
    bottleneck, limit = ("invoke", bound) if bound <= source_bound else ("decode_resize", source_bound)
    cpu_ms = sum(stage["median"] for stage in stages.values())  # all of a frame's work, spread over every core
    cpu_bound = (os.cpu_count() or 1) * 1000.0 / cpu_ms
    return {"pipeline_fps": round(summary.fps, 1), "invoke_bound_fps": round(bound, 1),
            "fps_ratio": round(summary.fps / bound, 3), "decode_resize_bound_fps": round(source_bound, 1),
            "bottleneck": bottleneck, "fps_ratio_vs_bottleneck": round(summary.fps / limit, 3),
            "cores_used": round(cores_used, 2), "cpu_ms_per_frame": round(cpu_ms, 3), "all_cores_bound_fps": round(cpu_bound, 1),
            "fps_ratio_ceiling": round(min(1.0, cpu_bound / bound), 3), "frames": summary.classified,
            "dropped": summary.dropped, "median_ms": {k: v["median"] for k, v in stages.items()}}


def folder_row(model: Model, folder: Path, passes: int) -> dict:
    """Pipeline FPS over the photo folder decoded at full size and at a reduced scale, alternating passes."""
    fps: dict[str, list[float]] = {"full": [], "reduced": []}
    shapes = {}
    for _ in range(passes):
        for kind, at_least in (("full", None), ("reduced", model.input_size)):
            source = open_source(str(folder), at_least=at_least)
            shapes[kind] = source.read().shape[:2]
            source.close()
            summary = run_stream(model, open_source(str(folder), at_least=at_least), StreamOptions())
            fps[kind].append(summary.fps)
    full, reduced = float(np.median(fps["full"])), float(np.median(fps["reduced"]))
    return {"full_decode_fps": round(full, 2), "reduced_decode_fps": round(reduced, 2),
            "reduced_speedup": round(reduced / full, 2), "decoded_full": "x".join(map(str, shapes["full"][::-1])),
            "decoded_reduced": "x".join(map(str, shapes["reduced"][::-1])), "passes": passes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 video frames instead of 600; 6 photos instead of 12")
    args = parser.parse_args()
    frames, photos = (300, 6) if args.quick else (600, 12)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = folder / "pan.mp4"
        make_video(video, frames)
        photo_bytes = make_photos(folder / "photos", photos)
        small = build_models(folder, ((0.35, 96),), ("int8",))
        large = build_models(folder, ((1.0, 224),), ("float32",))
        for name, path in {**small, **large}.items():
            results[name] = video_row(Model(path, num_threads=THREADS), video)
            print(json.dumps({name: results[name]}), file=sys.stderr)
        small_name, small_path = next(iter(small.items()))
        photos_row = folder_row(Model(small_path, num_threads=THREADS), folder / "photos", 2 if args.quick else 3)
        print(json.dumps({"photos": photos_row}), file=sys.stderr)
    print(json.dumps({
        "benchmark": "stream", "quick": args.quick, "video": f"640x480, {frames} frames", "threads": THREADS,
        "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
        "fps_ratio_min": min(r["fps_ratio"] for r in results.values()),
        "fps_ratio_vs_bottleneck_min": min(r["fps_ratio_vs_bottleneck"] for r in results.values()),
        **{f"{name}_{key}": value for name, r in results.items() for key, value in r.items() if key != "median_ms"},
        **{f"{name}_stage_median_ms": r["median_ms"] for name, r in results.items()},
        "photos": f"{photos} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} (12 MP), {photo_bytes / 1e6:.1f} MB each",
        **{f"photos_{small_name}_{key}": value for key, value in photos_row.items()},
    }))


if __name__ == "__main__":
    main()
