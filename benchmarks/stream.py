"""How much does the camera pipeline add on top of the model? Pipeline FPS vs 1 / median invoke latency.

Generates a 640x480 video panning over the photos scikit-image ships (astronaut, coffee, chelsea),
then runs `edgeclf camera`'s loop (capture thread, preprocess, invoke, post) over it for an int8
MobileNetV2 0.35@96 and a float32 1.0@224, and in the same run times the bare invoke of each model.
The capture thread decodes and resizes the next frame while the model runs; where that is slower than
the model (a 0.35@96 model outruns a 640x480 decode + resize), the run reports that bound too, and
the ceiling any pipeline has on this machine: the CPU time of all stages of a frame spread over
every core (fps_ratio_ceiling = that rate / the invoke bound, at most 1).
Prints one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from _mobilenets import build_models
from edgeclf.runtime.bench import LatencyStats, time_invokes
from edgeclf.runtime.model import Model
from edgeclf.runtime.sources import open_source
from edgeclf.runtime.stream import StreamOptions, run_stream

THREADS = 1


def make_video(path: Path, frames: int) -> None:
    from skimage import data

    strip = np.concatenate([cv2.resize(image, (640, 480)) for image in (data.astronaut(), data.coffee(), data.chelsea())],
                           axis=1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    span = strip.shape[1] - 640
    for i in range(frames):
        x = int(span * (0.5 - 0.5 * np.cos(2 * np.pi * i / frames)))  # pan across and back
        writer.write(cv2.cvtColor(strip[:, x:x + 640], cv2.COLOR_RGB2BGR))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 frames instead of 600")
    args = parser.parse_args()
    frames = 300 if args.quick else 600
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = folder / "pan.mp4"
        make_video(video, frames)
        small = build_models(folder, ((0.35, 96),), ("int8",))
        large = build_models(folder, ((1.0, 224),), ("float32",))
        for name, path in {**small, **large}.items():
            model = Model(path, num_threads=THREADS)
            # Same run, back to back: the bound first, then the pipeline, then the bound again.
            first = time_invokes(model, model.prepare(np.zeros((*model.input_size, 3), np.uint8)), 200, 1.0, 10)
            summary = run_stream(model, open_source(str(video)), StreamOptions())
            second = time_invokes(model, model.prepare(np.zeros((*model.input_size, 3), np.uint8)), 200, 1.0, 10)
            median = LatencyStats.of(np.concatenate([first, second])).median_ms
            bound = 1000.0 / median
            stages = summary.as_dict()["stage_ms"]
            # The capture thread decodes and resizes the next frame while the model runs: its own bound.
            source_bound = 1000.0 / (stages["capture"]["median"] + stages["preprocess"]["median"])
            # All the work one frame needs, spread perfectly over every core: no pipeline can beat it.
            cpu_ms = sum(stage["median"] for stage in stages.values())
            cpu_bound = (os.cpu_count() or 1) * 1000.0 / cpu_ms
            results[name] = {"pipeline_fps": round(summary.fps, 1), "invoke_bound_fps": round(bound, 1),
                             "fps_ratio": round(summary.fps / bound, 3),
                             "decode_resize_bound_fps": round(source_bound, 1),
                             "fps_ratio_vs_bottleneck": round(summary.fps / min(bound, source_bound), 3),
                             "cpu_ms_per_frame": round(cpu_ms, 3), "all_cores_bound_fps": round(cpu_bound, 1),
                             "fps_ratio_ceiling": round(min(1.0, cpu_bound / bound), 3),
                             "frames": summary.classified,
                             "dropped": summary.dropped,
                             "median_ms": {k: v["median"] for k, v in stages.items()}}
            print(json.dumps({name: results[name]}), file=sys.stderr)
    print(json.dumps({
        "benchmark": "stream", "quick": args.quick, "video": f"640x480, {frames} frames", "threads": THREADS,
        "fps_ratio_min": min(r["fps_ratio"] for r in results.values()),
        "fps_ratio_vs_bottleneck_min": min(r["fps_ratio_vs_bottleneck"] for r in results.values()),
        **{f"{name}_{key}": value for name, r in results.items() for key, value in r.items() if key != "median_ms"},
        **{f"{name}_stage_median_ms": r["median_ms"] for name, r in results.items()},
    }))


if __name__ == "__main__":
    main()
