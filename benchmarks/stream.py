"""How much does the camera pipeline add on top of its slowest stage? And what does decoding JPEGs at a reduced
scale buy for an image folder of large photos?

1. Video: generates a 640x480 video panning over the photos scikit-image ships (astronaut, coffee, chelsea),
   then runs `edgeclf camera`'s loop (capture thread, preprocess, invoke thread, post) over it for an int8
   MobileNetV2 0.35@96 and a float32 1.0@224, and in the same run times the bare invoke of each model. The
   capture thread decodes and resizes the next frames while the model runs, so the pipeline is bounded by the
   slower of the two: the model (invoke median) or the decoder (capture + preprocess medians). Each model's row
   names that bottleneck and the pipeline's FPS as a share of it (fps_ratio_vs_bottleneck); also the ceiling
   any pipeline has on this machine: the CPU time of all stages of a frame spread over every core.
   Bare-invoke chunks and pipeline runs of under a second each alternate, and every run is compared with the
   chunks on either side of it; the figures are medians over the rounds in which other processes left the
   machine's cores free (quiet rounds), or over all rounds when too few were (see `video_row`).
2. Image folder: large JPEGs (4000x3000, 12 MP, as phones and the Pi HQ camera write them) played through the
   same loop for the int8 0.35@96 model, decoded at full size and then at a reduced scale (libjpeg's 1/2, 1/4,
   1/8: what `edgeclf camera --source FOLDER` does when nothing is cropped), side by side in one run.

Prints one JSON object on its last line. The 1-minute load average and, per round, the cores other processes
kept busy are recorded: on a shared, busy machine the pipeline's two threads wait for cores more than a bare
invoke's one does, and its ratio falls (fps_ratio_vs_bottleneck_all_rounds keeps the busy rounds in).
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
VIDEO_FRAMES_MAX = 300  # frames of one pipeline run at most (the video's length)
CHUNK_S = 0.6  # seconds of one bare-invoke chunk; a pipeline run takes about as long (60 frames at least)
# A round is quiet when other processes kept less than this many cores busy meanwhile: on a 2-core machine
# shared with other sessions, a pipeline's two threads then have the cores they need.
QUIET_CORES = 0.5


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


def _busy_jiffies() -> int:
    """CPU time every process on the machine has used since boot, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


class _Clock:
    """Started before a measurement: afterwards `others_cores` says how many cores other processes (sessions
    sharing the machine) kept busy meanwhile, from the machine's busy CPU time less this process's."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.jiffies = time.perf_counter(), time.process_time(), _busy_jiffies()

    def others_cores(self) -> float:
        wall = time.perf_counter() - self.wall
        busy = (_busy_jiffies() - self.jiffies) / os.sysconf("SC_CLK_TCK")
        return max(0.0, (busy - (time.process_time() - self.cpu)) / wall) if wall > 0 else 0.0


def _bound_chunk(model: Model, tensor: np.ndarray, seconds: float) -> tuple[np.ndarray, float]:
    """Milliseconds of bare invokes for about `seconds` (at least 20): one chunk of the invoke bound; and the
    cores other processes kept busy meanwhile."""
    clock = _Clock()
    return time_invokes(model, tensor, 20, seconds, 2), clock.others_cores()


def video_row(model: Model, video: Path, rounds: int, max_rounds: int) -> dict:
    """The pipeline over the video against its bottleneck, in interleaved rounds.

    Bare-invoke chunks and pipeline runs alternate (bound, pipeline, bound, pipeline, ..., bound), each run
    about as long as a chunk, and each round's pipeline FPS is compared with the bound measured on either side
    of it, so that both sides of a ratio see the same moment of a shared machine. A round is quiet when other
    processes kept less than QUIET_CORES busy during its run and both chunks; rounds are run until `rounds` of
    them were quiet (at most `max_rounds` in all). The figures are medians over the quiet rounds, or over all
    rounds when fewer than 3 were quiet (`measured_on` says which); the per-round ratios and the cores other
    processes kept busy are listed beside them.
    """
    zeros = model.prepare(np.zeros((*model.input_size, 3), np.uint8))
    time_invokes(model, zeros, 20, 0.2, 10)  # warm-up
    chunks = [_bound_chunk(model, zeros, CHUNK_S)]
    # Each run takes about as long as a chunk (the whole video for a small, fast model).
    frames = min(VIDEO_FRAMES_MAX, max(60, int(CHUNK_S * 1000.0 / float(np.median(chunks[0][0])))))
    per_round: list[dict] = []
    while len(per_round) < max_rounds and sum(r["quiet"] for r in per_round) < rounds:
        clock = _Clock()
        summary = run_stream(model, open_source(str(video)), StreamOptions(max_frames=frames))
        cpu = time.process_time() - clock.cpu
        others = clock.others_cores()
        chunks.append(_bound_chunk(model, zeros, CHUNK_S))
        bound = 1000.0 / float(np.median(np.concatenate([chunks[-2][0], chunks[-1][0]])))
        stages = summary.as_dict()["stage_ms"]
        # The capture thread decodes and resizes the next frames while the model runs: its own bound.
        source_bound = 1000.0 / (stages["capture"]["median"] + stages["preprocess"]["median"])
        bottleneck, limit = ("invoke", bound) if bound <= source_bound else ("decode_resize", source_bound)
        cpu_ms = sum(stage["median"] for stage in stages.values())  # all of a frame's work, spread over every core
        busiest = max(others, chunks[-2][1], chunks[-1][1])
        per_round.append({
            "pipeline_fps": summary.fps, "invoke_bound_fps": bound, "fps_ratio": summary.fps / bound,
            "decode_resize_bound_fps": source_bound, "bottleneck": bottleneck, "fps_ratio_vs_bottleneck": summary.fps / limit,
            # Cores this process had while the pipeline ran (CPU seconds per second): a pipeline whose threads had
            # to wait for a busy machine's cores shows it here, and in the cores other processes kept busy.
            "cores_used": cpu / summary.seconds if summary.seconds else 0.0, "other_processes_cores": busiest,
            "quiet": busiest < QUIET_CORES, "cpu_ms_per_frame": cpu_ms,
            "all_cores_bound_fps": (os.cpu_count() or 1) * 1000.0 / cpu_ms, "dropped": summary.dropped,
            "median_ms": {k: v["median"] for k, v in stages.items()}})
    quiet = [r for r in per_round if r["quiet"]]
    used = quiet if len(quiet) >= 3 else per_round
    row = {}
    for key in ("pipeline_fps", "invoke_bound_fps", "fps_ratio", "decode_resize_bound_fps", "fps_ratio_vs_bottleneck",
                "cores_used", "other_processes_cores", "cpu_ms_per_frame", "all_cores_bound_fps"):
        digits = 1 if key.endswith("_fps") else 3
        row[key] = round(float(np.median([r[key] for r in used])), digits)
    bottlenecks = [r["bottleneck"] for r in used]
    row["bottleneck"] = max(set(bottlenecks), key=bottlenecks.count)
    row["fps_ratio_ceiling"] = round(min(1.0, row["all_cores_bound_fps"] / row["invoke_bound_fps"]), 3)
    row["measured_on"] = f"{len(quiet)} quiet rounds" if used is quiet else f"all {len(per_round)} rounds (busy machine)"
    row["fps_ratio_vs_bottleneck_all_rounds"] = round(float(np.median([r["fps_ratio_vs_bottleneck"] for r in per_round])), 3)
    row["frames_per_round"] = frames
    row["dropped"] = sum(r["dropped"] for r in per_round)
    row["round_ratios_vs_bottleneck"] = [round(r["fps_ratio_vs_bottleneck"], 3) for r in per_round]
    row["round_other_processes_cores"] = [round(r["other_processes_cores"], 2) for r in per_round]
    row["median_ms"] = {stage: round(float(np.median([r["median_ms"][stage] for r in used])), 4)
                        for stage in per_round[0]["median_ms"]}
    return row


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
    parser.add_argument("--quick", action="store_true",
                        help="5 quiet rounds (of at most 12) instead of 11 (of at most 30); 6 photos instead of 12")
    args = parser.parse_args()
    frames = VIDEO_FRAMES_MAX
    rounds, max_rounds, photos = (5, 12, 6) if args.quick else (11, 30, 12)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = folder / "pan.mp4"
        make_video(video, frames)
        photo_bytes = make_photos(folder / "photos", photos)
        small = build_models(folder, ((0.35, 96),), ("int8",))
        large = build_models(folder, ((1.0, 224),), ("float32",))
        for name, path in {**small, **large}.items():
            results[name] = video_row(Model(path, num_threads=THREADS), video, rounds, max_rounds)
            print(json.dumps({name: results[name]}), file=sys.stderr)
        small_name, small_path = next(iter(small.items()))
        photos_row = folder_row(Model(small_path, num_threads=THREADS), folder / "photos", 2 if args.quick else 3)
        print(json.dumps({"photos": photos_row}), file=sys.stderr)
    print(json.dumps({
        "benchmark": "stream", "quick": args.quick, "video": f"640x480, {frames} frames", "threads": THREADS,
        "quiet_rounds_wanted": rounds, "quiet_cores": QUIET_CORES,
        "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
        "fps_ratio_min": min(r["fps_ratio"] for r in results.values()),
        "fps_ratio_vs_bottleneck_min": min(r["fps_ratio_vs_bottleneck"] for r in results.values()),
        "fps_ratio_vs_bottleneck_min_all_rounds": min(r["fps_ratio_vs_bottleneck_all_rounds"] for r in results.values()),
        **{f"{name}_{key}": value for name, r in results.items() for key, value in r.items() if key != "median_ms"},
        **{f"{name}_stage_median_ms": r["median_ms"] for name, r in results.items()},
        "photos": f"{photos} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} (12 MP), {photo_bytes / 1e6:.1f} MB each",
        **{f"photos_{small_name}_{key}": value for key, value in photos_row.items()},
    }))


if __name__ == "__main__":
    main()
