"""int8 vs float32 latency of every family edgeclf builds, on this CPU, with the CPU features that decide it.

Each family (random weights, BatchNorm statistics settled on the calibration images so the int8 scales are
a trained model's; latency does not need trained weights) is exported float32 and full-int8 by edgeclf's
own conversions, at 224 px (cnn and resnet_mini at 96), and timed by the runtime's bench in alternating
rounds, so both kinds share the machine's state; each ratio is the median over rounds of int8 / float32
medians. Beside each ratio: the XNNPACK partitions of both files and the ops left outside XNNPACK (an op
outside between partitions is what made MobileNetV3 int8 2.5x slower than float32). On a CPU without int8
dot product (x86 without VNNI, Cortex-A72) int8 is not expected to be faster: the target there is <= 1.1;
with VNNI or ARM dot product, <= 0.6.

For each family over the target the run also times the files op by op (`per_op_<family>`): every op cut
out of the file into a one-op model, timed alone in alternating rounds with the same XNNPACK settings, the
medians summed by what the op is (the first convolution over the 3 pixel channels, 1x1 convolutions by
input depth, depthwise, hard-swish, squeeze-excite, the input/output conversions): which layers int8 loses
on. The sums leave out what one op alone cannot show (a PAD XNNPACK fuses into the convolution after it
counts apart), so they are near, not equal to, the whole file's median.
"""
from __future__ import annotations

import argparse
import json
import platform
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
X86_WITHOUT_VNNI = (  # what XNNPACK's configuration (src/configs/gemm-config.c, dwconv-config.c) picks on such a CPU
    "x86 with AVX2, no VNNI: int8 convolutions run XNNPACK's qs8_qc8w 3x8c8 AVX2 kernels (widened to 16 bits, "
    "vpmaddwd; a convolution's input depth is padded to 8 at each kernel tap, so a first convolution over 3 pixel "
    "channels computes 9 taps x 8 for 27 products, and each 3x8 block of outputs is requantized), depthwise the "
    "qs8_qc8w avx2_mul32 kernels; float32 runs f32 FMA3 kernels with no padding. No export choice selects other int8 "
    "kernels there: per-tensor weights use the same configuration, and XNNPACK's faster AVX2 int8 kernels (avx2_madd) "
    "take only 4- and 2-bit weights.")


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


def one_op_models(content: bytes) -> list[tuple[str, bytes]]:
    """(what the op is, a model of that op alone) for every op of a .tflite file, in graph order: the op's
    computed inputs become the model's inputs, its outputs the model's outputs, weights stay constants."""
    from ai_edge_litert.tools import flatbuffer_utils

    source = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = source.subgraphs[0]
    constant = {i for i, t in enumerate(graph.tensors) if t.buffer and source.buffers[t.buffer].data is not None
                and len(source.buffers[t.buffer].data)}
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(c) for c in source.operatorCodes]
    names = {v: k for k, v in vars(flatbuffer_utils.schema_fb.BuiltinOperator).items() if not k.startswith("_")}
    models = []
    for index, op in enumerate(graph.operators):
        shapes = [list(graph.tensors[i].shape) if i not in constant else None for i in op.inputs if i >= 0]
        weights = [list(graph.tensors[i].shape) for i in op.inputs if i >= 0 and i in constant]
        kind = op_kind(names[codes[op.opcodeIndex]], shapes, weights, list(graph.tensors[op.outputs[0]].shape))
        single = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
        alone = single.subgraphs[0]
        alone.operators = [alone.operators[index]]
        alone.inputs = [i for i in op.inputs if i >= 0 and i not in constant]
        alone.outputs = list(op.outputs)
        single.signatureDefs = []
        models.append((kind, bytes(flatbuffer_utils.convert_object_to_bytearray(single))))
    return models


def op_kind(name: str, inputs: list, weights: list, output: list) -> str:
    """What one op is in an image classifier, from its type and shapes (inputs: None for a constant)."""
    computed = [shape for shape in inputs if shape is not None]
    spatial = len(output) == 4 and output[1] * output[2] > 1
    if name in ("QUANTIZE", "DEQUANTIZE"):
        return "input/output conversion"
    if name == "CONV_2D":
        depth = weights[0][3]
        if depth <= 4:
            return "first conv (3 pixel channels)"
        if weights[0][1] == weights[0][2] == 1:
            return f"1x1 conv, input depth {'<= 48' if depth <= 48 else '> 48'}" if spatial else "squeeze-excite"
        return "kxk conv"
    if name == "DEPTHWISE_CONV_2D":
        return "depthwise conv"
    if name in ("MUL", "ADD") and len(computed) == 1:  # by a constant
        if computed[0][-1] == 3:
            return "input rescaling"
        return "hard-swish" if spatial else "squeeze-excite"
    if name == "MUL" and len(computed) == 2:
        return "hard-swish" if computed[0] == computed[1] else "squeeze-excite"
    if name == "HARD_SWISH":
        return "hard-swish"
    if name == "ADD":
        return "residual add"
    if name == "MEAN":
        return "mean (pooling, squeeze-excite)"
    return name


def time_alone(content: bytes, min_time: float) -> float:
    """Median microseconds of one invoke of `content` (random inputs, 1 thread, XNNPACK as everywhere)."""
    from edgeclf.runtime._backend import get_backend
    from edgeclf.runtime._native_log import quiet_native_stderr

    with quiet_native_stderr():
        interpreter = get_backend().interpreter_class(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = detail["dtype"]
        values = (rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, detail["shape"], dtype=dtype)
                  if np.issubdtype(dtype, np.integer) else rng.standard_normal(detail["shape"]).astype(dtype))
        interpreter.set_tensor(detail["index"], values)
    interpreter.invoke()
    times = []
    start = time.perf_counter()
    while len(times) < 20 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6


def per_op(paths: dict[str, Path], rounds: int, min_time: float) -> dict[str, dict[str, float]]:
    """{what: {"float32": ms, "int8": ms}}: each kind's ops timed alone, alternating rounds, medians summed."""
    ops = {kind: one_op_models(path.read_bytes()) for kind, path in paths.items()}
    times = {kind: [[] for _ in models] for kind, models in ops.items()}
    for _ in range(rounds):
        for kind, models in ops.items():
            for i, (_, content) in enumerate(models):
                times[kind][i].append(time_alone(content, min_time))
    table: dict[str, dict[str, float]] = {}
    for kind, models in ops.items():
        for (what, _), measured in zip(models, times[kind]):
            row = table.setdefault(what, {"float32": 0.0, "int8": 0.0})
            row[kind] += float(np.median(measured)) / 1000
    rows = sorted(table.items(), key=lambda item: item[1]["float32"] - item[1]["int8"])  # what int8 loses most on, first
    return {what: {kind: round(ms, 3) for kind, ms in row.items()} for what, row in rows} | {
        "sum": {kind: round(sum(row[kind] for row in table.values()), 3) for kind in ("float32", "int8")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"every family at {QUICK_SIZE} px, 3 rounds of 0.3 s at 1 thread, instead of 7 of 1 s at 1 and 2")
    args = parser.parse_args()
    rounds, min_time, thread_counts = (3, 0.3, (1,)) if args.quick else (7, 1.0, (1, 2))
    op_rounds, op_min_time = (3, 0.02) if args.quick else (5, 0.1)
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
                if threads == 1 and ratio > target:
                    figures[f"per_op_{label}_{size}"] = per_op(paths, op_rounds, op_min_time)
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
    if any(key.startswith("per_op_") for key in figures) and not cpu.int8_dot_product \
            and platform.machine().lower() in ("x86_64", "amd64"):
        figures["per_op_kernels"] = X86_WITHOUT_VNNI
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
