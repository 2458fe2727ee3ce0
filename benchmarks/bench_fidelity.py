"""Does `edgeclf bench` measure what LiteRT's own benchmark measures? And how fast does the runtime start?

For MobileNetV2 1.0@224 and 0.35@96 (random weights), float32 and int8, at 1 and 2 threads, runs
`edgeclf bench` and `python -m ai_edge_litert.tools.benchmark_litert_model` alternately in this run
(several rounds each, as the machine is shared) and compares their medians. Then times a process from start to its first classification with
`edgeclf classify` vs the same command in a process that imports TensorFlow first.
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


def edgeclf_median(model: Path, threads: int, runs: int, min_time: float) -> float:
    out = subprocess.run([sys.executable, "-m", "edgeclf", "bench", str(model), "--threads", str(threads),
                          "--runs", str(runs), "--min-time", str(min_time), "--warmup", "5", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["results"][0]["median_ms"]


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
    runs, min_time, repeats, rounds = (30, 0.5, 3, 3) if args.quick else (100, 2.0, 5, 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = build_models(folder)
        for name, path in models.items():
            for threads in (1, 2):
                # The machine is shared: alternate the two tools over several rounds, take each one's median.
                ours_rounds, theirs_rounds = [], []
                for _ in range(rounds):
                    ours_rounds.append(edgeclf_median(path, threads, runs, min_time))
                    theirs_rounds.append(litert_median(path, threads, runs, folder))
                ours, theirs = statistics.median(ours_rounds), statistics.median(theirs_rounds)
                rows.append({"model": name, "threads": threads, "edgeclf_median_ms": round(ours, 3),
                             "litert_median_ms": theirs, "deviation": round(abs(ours - theirs) / theirs, 3)})
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
        "startup_ratio": round(light / heavy, 3), "startup_edgeclf_s": round(light, 3),
        "startup_with_tensorflow_s": round(heavy, 3),
        **{f"{r['model']}@{r['threads']}t": f"edgeclf {r['edgeclf_median_ms']} ms / LiteRT {r['litert_median_ms']} ms"
           for r in rows},
    }))


if __name__ == "__main__":
    main()
