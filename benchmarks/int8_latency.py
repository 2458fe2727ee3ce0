"""int8 vs float32 latency of every family edgeclf builds, on this CPU, with the CPU features that decide it.

Each family (random weights, BatchNorm statistics settled on the calibration images so the int8 scales are
a trained model's; latency does not need trained weights) is exported float32 and full-int8 by edgeclf's
own conversions, at 224 px (cnn and resnet_mini at 96), and timed by the runtime's bench in alternating
rounds, so both kinds share the machine's state; each ratio is the median over rounds of int8 / float32
medians. Beside each ratio: the XNNPACK partitions of both files and the ops left outside XNNPACK (an op
outside between partitions is what made MobileNetV3 int8 2.5x slower than float32). On a CPU without int8
dot product (x86 without VNNI, Cortex-A72) int8 is not expected to be faster: the target there is <= 1.1;
with VNNI or ARM dot product, <= 0.6.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeclf.runtime import delegation
from edgeclf.runtime.bench import bench
from edgeclf.runtime.cpu import cpu_info, int8_note

FAMILIES = (  # (label, model, alpha, minimalistic, size)
    ("cnn", "cnn", 1.0, False, 96), ("resnet_mini", "resnet_mini", 1.0, False, 96),
    ("mobilenet_v2", "mobilenet_v2", 1.0, False, 224),
    ("mobilenet_v3_small", "mobilenet_v3_small", 1.0, False, 224),
    ("mobilenet_v3_small_minimalistic", "mobilenet_v3_small", 1.0, True, 224),
    ("mobilenet_v3_large", "mobilenet_v3_large", 1.0, False, 224),
    ("mobilenet_v3_large_minimalistic", "mobilenet_v3_large", 1.0, True, 224),
    ("efficientnet_b0", "efficientnet_b0", 1.0, False, 224), ("resnet50", "resnet50", 1.0, False, 224),
)
QUICK_SIZE = 96  # --quick: every family at 96 px (conversions dominate a quick run)


def export(folder: Path, label: str, name: str, alpha: float, minimalistic: bool, size: int) -> dict[str, Path]:
    """float32 and int8 files of one family, as `edgeclf build` converts them."""
    from edgeclf.runtime.metadata import ModelMetadata, write
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.export import convert_float32, convert_int8
    from edgeclf.toolchain.models import create_model, settle_batchnorm

    keras().utils.set_random_seed(0)
    model = create_model(ModelConfig(name=name, alpha=alpha, weights="none", minimalistic=minimalistic), 10, size)
    images = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    settle_batchnorm(model, images.astype(np.float32))
    metadata = ModelMetadata(name=f"{label} random weights", labels=tuple(str(i) for i in range(10)))
    paths = {}
    for kind, content in (("float32", convert_float32(model)), ("int8", convert_int8(model, images))):
        paths[kind] = folder / f"{label}_{size}_{kind}.tflite"
        paths[kind].write_bytes(write(content, metadata))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"every family at {QUICK_SIZE} px, 3 rounds of 0.3 s at 1 thread, instead of 7 of 1 s at 1 and 2")
    args = parser.parse_args()
    rounds, min_time, thread_counts = (3, 0.3, (1,)) if args.quick else (7, 1.0, (1, 2))
    cpu = cpu_info()
    target = 0.6 if cpu.int8_dot_product else 1.1
    figures = {"benchmark": "int8_latency", "quick": args.quick, "cpu": cpu.name, "cores": cpu.cores,
               "cpu_features": cpu.feature_list(), "cpu_int8_dot_product": cpu.int8_dot_product,
               "target_ratio": target}
    started = time.perf_counter()
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, alpha, minimalistic, size in FAMILIES:
            size = QUICK_SIZE if args.quick else size
            paths = export(Path(tmp), label, name, alpha, minimalistic, size)
            runs = {kind: delegation.read(path.read_bytes()) for kind, path in paths.items()}
            figures[f"xnnpack_{label}"] = {kind: {"partitions": d.partitions, "outside": d.outside,
                                                  "outside_only_at_edges": d.edge_only} for kind, d in runs.items()}
            for threads in thread_counts:
                medians = {"float32": [], "int8": []}
                for _ in range(rounds):
                    for kind in medians:
                        medians[kind].append(bench(paths[kind], threads, runs=50, min_time=min_time).stats.median_ms)
                key = f"{label}_{size}_{threads}t"
                ratio = float(np.median(np.array(medians["int8"]) / np.array(medians["float32"])))
                ratios[key] = figures[f"ratio_{key}"] = round(ratio, 3)
                figures[f"ms_{key}"] = {"float32": round(float(np.median(medians["float32"])), 3),
                                        "int8": round(float(np.median(medians["int8"])), 3)}
    one_thread = {key: ratio for key, ratio in ratios.items() if key.endswith("_1t")}
    worst = max(one_thread, key=one_thread.get)
    figures["ratio_max_1t"] = one_thread[worst]
    figures["ratio_max_1t_family"] = worst
    figures["families_over_target_1t"] = sorted(key for key, ratio in one_thread.items() if ratio > target)
    figures["one_xnnpack_partition_every_family"] = all(
        figures[f"xnnpack_{label}"][kind]["partitions"] == 1 and figures[f"xnnpack_{label}"][kind]["outside_only_at_edges"]
        for label, *_ in FAMILIES for kind in ("float32", "int8"))
    ms = figures[f"ms_{worst}"]
    figures["note_worst_1t"] = int8_note(cpu, ms["int8"], ms["float32"])
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
