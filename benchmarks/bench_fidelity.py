"""Does `edgeclf bench` measure what LiteRT's own benchmark measures? And how fast does the runtime start?

For MobileNetV2 1.0@224 and 0.35@96 (random weights), float32 and int8, at 1 and 2 threads, runs
`edgeclf bench` and `python -m ai_edge_litert.tools.benchmark_litert_model` alternately in this run
(several rounds each, as the machine is shared); the deviation is that of the median of the
rounds' edgeclf/LiteRT ratios from 1. Then times a process from start to its first
classification with `edgeclf classify` vs the same command in a process that imports TensorFlow first.
Prints one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _mobilenets import build_models


def edgeclf_median(model: Path, threads: int, runs: int, min_time: float) -> tuple[float, int]:
    """edgeclf bench's median and how many timed runs it took to meet both --runs and --min-time."""
    out = subprocess.run([sys.executable, "-m", "edgeclf", "bench", str(model), "--threads", str(threads),
                          "--runs", str(runs), "--min-time", str(min_time), "--warmup", "5", "--json"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)["results"][0]
    return result["median_ms"], result["runs"]


def litert_median(model: Path, threads: int, runs: int, folder: Path) -> float:
    result = folder / f"{model.stem}-{threads}.json"
    subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model", str(model),
                    "--num_threads", str(threads), "--num_runs", str(runs), "--warmup_runs", "5",
                    "--result_json", str(result)], capture_output=True, text=True, check=True)
    return json.loads(result.read_text())["latency"]["median_ms"]


def startup_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer timed runs")
    args = parser.parse_args()
    runs, min_time, repeats, rounds = (30, 0.5, 3, 3) if args.quick else (100, 2.0, 5, 7)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = build_models(folder)
        for name, path in models.items():
            for threads in (1, 2):
                # The machine is shared: alternate the two tools over several rounds, take each one's median.
                ours_rounds, theirs_rounds = [], []
                for _ in range(rounds):
                    # LiteRT's tool times a fixed count: give it as many runs as edgeclf took for its
                    # --min-time, so both medians cover the same stretch (100 runs of a 0.2 ms model
                    # are 20 ms, at the mercy of whatever else the machine does in that instant).
                    median, taken = edgeclf_median(path, threads, runs, min_time)
                    ours_rounds.append(median)
                    theirs_rounds.append(litert_median(path, threads, taken, folder))
                ours, theirs = statistics.median(ours_rounds), statistics.median(theirs_rounds)
                # Each round's pair ran back to back on the same machine state; the median of their
                # ratios is less swayed by load that comes and goes between rounds than two medians.
                ratio = statistics.median(a / b for a, b in zip(ours_rounds, theirs_rounds))
                rows.append({"model": name, "threads": threads, "edgeclf_median_ms": round(ours, 3),
                             "litert_median_ms": theirs, "paired_ratio": round(ratio, 3),
                             "deviation": round(abs(ratio - 1.0), 3),
                             "unpaired_deviation": round(abs(ours - theirs) / theirs, 3),
                             "rounds": [[round(a, 3), b] for a, b in zip(ours_rounds, theirs_rounds)]})
                print(json.dumps(rows[-1]), file=sys.stderr)
        small = models["mobilenet_v2_0.35_96_int8"]
        image = folder / "image.png"
        import cv2

        cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
        classify = ["-m", "edgeclf", "classify", str(small), str(image)]
        light = startup_seconds([sys.executable, *classify], repeats)
        heavy = startup_seconds([sys.executable, "-c", "import sys, runpy; import tensorflow; "
                                 f"sys.argv = ['edgeclf', *{classify[2:]!r}]; runpy.run_module('edgeclf', run_name='__main__')"],
                                repeats)
    print(json.dumps({
        "benchmark": "bench_fidelity", "quick": args.quick, "runs": runs, "rounds": rounds,
        "max_median_deviation": max(r["deviation"] for r in rows),
        # the same from the two tools' medians over all rounds, unpaired (more exposed to load that varies)
        "max_median_deviation_unpaired": max(r["unpaired_deviation"] for r in rows),
        "startup_ratio": round(light / heavy, 3), "startup_edgeclf_s": round(light, 3),
        "startup_with_tensorflow_s": round(heavy, 3),
        **{f"{r['model']}@{r['threads']}t": f"edgeclf {r['edgeclf_median_ms']} ms / LiteRT {r['litert_median_ms']} ms, "
                                            f"paired ratio {r['paired_ratio']}"
           for r in rows},
    }))


if __name__ == "__main__":
    main()
