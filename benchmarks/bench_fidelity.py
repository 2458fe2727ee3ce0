"""Does `edgeclf bench` measure what LiteRT's own benchmark measures? And how fast does the runtime start?

For MobileNetV2 1.0@224 and 0.35@96 (random weights), float32 and int8, at 1 and 2 threads, runs
`edgeclf bench` and `python -m ai_edge_litert.tools.benchmark_litert_model` alternately in this run
(several rounds each, as the machine is shared); the deviation is that of the median of the
rounds' edgeclf/LiteRT ratios from 1. For the smallest model,
where the two part, it also times both APIs alternately inside one process (edgeclf's set input /
invoke / read output against the CompiledModel.run_by_name call the tool times), which shows the
per-call cost of each API without the machine's noise. Then times a process from start to its first
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


def api_medians(model_path: Path, threads: int, runs: int, rounds: int) -> dict:
    """One process, alternating: edgeclf's timed call (set input, invoke, read output) and LiteRT's
    CompiledModel.run_by_name built and called the way benchmark_litert_model does. With both in one
    process the machine's noise cancels, so what is left is what the two APIs cost per call."""
    from unittest import mock

    from ai_edge_litert.tools import benchmark_litert_model as tool
    from edgeclf.runtime.bench import random_input, time_invokes
    from edgeclf.runtime.model import Model

    with mock.patch.object(sys, "argv", ["benchmark_litert_model", "--model", str(model_path),
                                         "--num_threads", str(threads)]):
        args = tool.parse_args()
    compiled_cls, accel_cls, env_cls, env_options_cls, options_cls, cpu_options_cls = tool._import_litert()
    env = tool.create_environment(args, env_cls, env_options_cls)
    compiled = compiled_cls.from_file(str(model_path), environment=env, options=tool.create_model_options(
        args, options_cls, cpu_options_cls, tool.build_hardware_accelerators(args, accel_cls)))
    signature = list(compiled.get_signature_list())[0]
    inputs = {name: compiled.create_input_buffer_by_name(signature, name)
              for name in compiled.get_input_tensor_details(signature)}
    outputs = {name: compiled.create_output_buffer_by_name(signature, name)
               for name in compiled.get_output_tensor_details(signature)}
    for name, buffer in inputs.items():
        tool.fill_random_input(buffer, compiled.get_input_tensor_details(signature)[name])
    ours = Model(model_path, num_threads=threads)
    tensor = ours.prepare(random_input(ours))

    def theirs_ms() -> float:
        for _ in range(5):
            compiled.run_by_name(signature, inputs, outputs)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            compiled.run_by_name(signature, inputs, outputs)
            times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.median(times)

    pairs = [(float(np.median(time_invokes(ours, tensor, runs, 0.0, 5))), theirs_ms()) for _ in range(rounds)]
    edgeclf_ms, litert_ms = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    return {"edgeclf_ms": round(edgeclf_ms, 4), "litert_run_by_name_ms": round(litert_ms, 4),
            "litert_api_overhead_ms": round(litert_ms - edgeclf_ms, 4),
            "deviation": round(abs(edgeclf_ms - litert_ms) / litert_ms, 3)}


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
        # The smallest model is where the tools part: measure both APIs side by side in this process.
        same_process = {threads: api_medians(small, threads, 10 * runs, 2 * rounds) for threads in (1, 2)}
        print(json.dumps({"same_process": same_process}), file=sys.stderr)
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
        "max_median_deviation_same_process": max(v["deviation"] for v in same_process.values()),
        **{f"same_process_mobilenet_v2_0.35_96_int8@{t}t": v for t, v in same_process.items()},
        **{f"{r['model']}@{r['threads']}t": f"edgeclf {r['edgeclf_median_ms']} ms / LiteRT {r['litert_median_ms']} ms, "
                                            f"paired ratio {r['paired_ratio']}"
           for r in rows},
    }))


if __name__ == "__main__":
    main()
