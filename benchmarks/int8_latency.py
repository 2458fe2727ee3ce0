"""int8 vs float32 latency on this CPU, with the CPU features that decide it.

MobileNetV2 1.0@224 and 0.35@96 (random weights: latency does not need trained ones), float32 and
full-int8, timed by `edgeclf bench` (the runtime's bench) at 1 and 2 threads in alternating rounds, so
both kinds share the machine's state; each ratio is the median over rounds of int8 / float32 medians.
Next to the ratios: the CPU, its int8 features and whether it has int8 dot-product instructions, and
the note edgeclf's reports print for these figures. On a CPU without dot product (x86 without VNNI,
Cortex-A72) int8 is not expected to be faster; there the ratio is a fact to report, not a target.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from _mobilenets import build_models
from edgeclf.runtime.bench import bench
from edgeclf.runtime.cpu import cpu_info, int8_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.3 s instead of 7 of 1 s")
    args = parser.parse_args()
    rounds, min_time = (3, 0.3) if args.quick else (7, 1.0)
    cpu = cpu_info()
    figures = {"benchmark": "int8_latency", "quick": args.quick, "cpu": cpu.name, "cores": cpu.cores,
               "cpu_features": cpu.feature_list(), "cpu_int8_dot_product": cpu.int8_dot_product}
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp))
        for alpha, size in ((1.0, 224), (0.35, 96)):
            for threads in (1, 2):
                medians = {"float32": [], "int8": []}
                for _ in range(rounds):
                    for kind in medians:
                        path = models[f"mobilenet_v2_{alpha}_{size}_{kind}"]
                        medians[kind].append(bench(path, threads, runs=50, min_time=min_time).stats.median_ms)
                key = f"{alpha}_{size}_{threads}t"
                ratio = float(np.median(np.array(medians["int8"]) / np.array(medians["float32"])))
                float_ms, int8_ms = float(np.median(medians["float32"])), float(np.median(medians["int8"]))
                figures[f"ratio_{key}"] = round(ratio, 3)
                figures[f"ms_{key}"] = {"float32": round(float_ms, 3), "int8": round(int8_ms, 3)}
    figures["note_1.0_224_1t"] = int8_note(cpu, figures["ms_1.0_224_1t"]["int8"], figures["ms_1.0_224_1t"]["float32"])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
