"""What pruning and int8 buy on this machine, measured side by side in one run.

Builds the demo model (cnn on digits, --prune 0.5 --int8) and compares, in the same process:
the unpruned float32 model, the pruned float32 model and the pruned int8 model: accuracy,
file and gzip size, and single-thread latency via `edgeclf.runtime.bench`.
Prints one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edgeclf.runtime.bench import bench
from edgeclf.toolchain.build import build
from edgeclf.toolchain.config import BuildConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and shorter timing (under a minute)")
    args = parser.parse_args()
    overrides = {"prune.sparsity": 0.5, "quantize.int8": True}
    if args.quick:
        overrides.update({"train.epochs": 6, "prune.epochs": 4})
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run = build(BuildConfig().override({**overrides, "export.out": out}),
                    log=lambda message: print(message, file=sys.stderr))
        build_seconds = time.perf_counter() - started
        report = json.loads((run / "report.json").read_text())
        min_time = 0.5 if args.quick else 2.0
        latency = {name: bench(run / f"model_{name}.tflite", threads=1, runs=200, min_time=min_time).stats.median_ms
                   for name in ("float32", "int8")}
    float32, int8, dense = report["artifacts"]["float32"], report["artifacts"]["int8"], report["dense_reference"]
    print(json.dumps({
        "benchmark": "compression", "quick": args.quick, "model": "cnn@32 digits",
        "build_seconds": round(build_seconds, 1),
        "float32_accuracy": round(float32["accuracy"], 4), "int8_accuracy": round(int8["accuracy"], 4),
        "int8_drop_pts": round(100 * (float32["accuracy"] - int8["accuracy"]), 2),
        "int8_agreement": round(int8["agreement_with_float32"], 4),
        "sparsity": round(report["sparsity"]["overall"], 4),
        "pruned_vs_dense_gzip_ratio": round(float32["gzip_bytes"] / dense["gzip_bytes"], 3),
        "pruned_vs_dense_bytes_ratio": round(float32["bytes"] / dense["bytes"], 3),
        "pruned_vs_dense_latency_ratio": round(float32["latency_ms"]["median"] / dense["latency_ms"]["median"], 3),
        "int8_vs_float32_bytes_ratio": round(int8["bytes"] / float32["bytes"], 3),
        "int8_vs_float32_latency_ratio": round(latency["int8"] / latency["float32"], 3),
        "float32_median_ms": round(latency["float32"], 4), "int8_median_ms": round(latency["int8"], 4),
    }))


if __name__ == "__main__":
    main()
