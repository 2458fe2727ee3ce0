"""What pruning, int8 and QAT buy and cost, measured side by side in one run.

For each dataset (scikit-learn digits; a generated folder of photo crops, 5 classes) and model
(`cnn` at 32 px; `mobilenet_v2` alpha 0.35 at 96 px, trained from scratch), two builds:
float32 + post-training int8 + QAT int8, and the same pruned to 50% + int8. Then MobileNetV2 1.0
at 224 px (random weights) for the int8/float32 size and latency ratios.

The other families (FAMILIES: MobileNetV3 Small and Large, EfficientNetB0, ResNet50, each trained from
scratch at 64 px) get one build each per dataset, float32 + post-training int8, for their int8 drop and
agreement with float32 (QAT is left out: tfmot 0.8.1 cannot wrap MobileNetV3's hard-swish nor
EfficientNet's Normalization and squeeze-excite Multiply).

Every accuracy is the runtime's top-1 on the validation split. Prints one JSON object on its last line;
the headline keys are worst cases over the runs (the families' are reported beside them, per family).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

from _mobilenets import build_models
from _photos import make_photo_folder
from edgeclf.runtime.bench import bench
from edgeclf.runtime.cpu import cpu_info
from edgeclf.toolchain.build import build
from edgeclf.toolchain.config import BuildConfig

MODELS = {"cnn": {"model.name": "cnn"},
          "mobilenet_v2_0.35_96": {"model.name": "mobilenet_v2", "model.alpha": 0.35, "model.size": 96,
                                   "model.weights": "none", "train.learning_rate": 0.002}}


def log(message: str) -> None:
    print(message, file=sys.stderr)


def kernel_gzip(path: Path, layers: dict[str, int]) -> tuple[int, int]:
    """gzip bytes of the whole .tflite file, and of the int8 kernels of `layers` (name: weight count)
    gzipped together. The kernels are the weight inputs of the CONV_2D and FULLY_CONNECTED ops."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    kernels = bytearray()
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        weight = tensors[op["inputs"][1]]
        if set(weight["name"].replace(";", "/").split("/")) & set(layers):
            kernels.extend(interpreter.get_tensor(weight["index"]).tobytes())
    if len(kernels) != sum(layers.values()):  # a layer not found, or found twice: the figure would be wrong
        raise RuntimeError(f"{path}: found {len(kernels)} kernel bytes for the pruned layers, expected {sum(layers.values())}")
    return len(gzip.compress(path.read_bytes(), 9)), len(gzip.compress(bytes(kernels), 9))


def run_pair(data: str, model: str, epochs: int, out: Path) -> dict:
    base = {**MODELS[model], "data.source": data, "train.epochs": epochs, "export.out": str(out),
            "quantize.int8": True, "prune.epochs": max(2, epochs // 2), "quantize.qat_epochs": max(2, epochs // 4)}
    plain_dir = build(BuildConfig().override({**base, "quantize.qat": True}), log).run_dir
    pruned_dir = build(BuildConfig().override({**base, "prune.sparsity": 0.5}), log).run_dir
    plain, pruned = (json.loads((d / "report.json").read_text()) for d in (plain_dir, pruned_dir))
    pruned_layers = {name: layer["weights"] for name, layer in pruned["sparsity"]["layers"].items() if layer["pruned"]}
    dense_gzip, dense_kernels = kernel_gzip(plain_dir / "model_int8.tflite", pruned_layers)
    _, pruned_kernels = kernel_gzip(pruned_dir / "model_int8.tflite", pruned_layers)
    a, p = plain["artifacts"], pruned["artifacts"]
    drop = 100 * (a["float32"]["accuracy"] - a["int8"]["accuracy"])
    qat_drop = 100 * (a["float32"]["accuracy"] - a["int8_qat"]["accuracy"])
    return {
        "float32_top1": round(a["float32"]["accuracy"], 4), "int8_top1": round(a["int8"]["accuracy"], 4),
        "qat_int8_top1": round(a["int8_qat"]["accuracy"], 4),
        "pruned_float32_top1": round(p["float32"]["accuracy"], 4), "pruned_int8_top1": round(p["int8"]["accuracy"], 4),
        "int8_drop_points": round(drop, 2), "int8_agreement": round(a["int8"]["agreement_with_float32"], 4),
        "qat_drop_points": round(qat_drop, 2),
        "qat_recovery": round((drop - qat_drop) / drop, 3) if drop > 0.5 else None,
        "int8_size_ratio": round(a["int8"]["bytes"] / a["float32"]["bytes"], 3),
        "pruned_gzip_ratio": round(p["int8"]["gzip_bytes"] / a["int8"]["gzip_bytes"], 3),
        "pruned_sparsity": round(pruned["sparsity"]["overall"], 3),
        # what pruning can reach: the prunable kernels' share of the int8 file's gzip bytes, and how
        # much smaller they gzip once pruned (the rest: depthwise kernels, biases, per-channel scales)
        "prunable_share_of_int8_gzip": round(dense_kernels / dense_gzip, 3),
        "prunable_kernels_gzip_ratio": round(pruned_kernels / dense_kernels, 3),
        "pruned_vs_dense_latency_ratio": round(p["float32"]["latency_ms"]["median"]
                                               / pruned["dense_reference"]["latency_ms"]["median"], 3),
    }


FAMILIES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "resnet50")
FAMILY_SIZE = 64


def run_family(data: str, model: str, epochs: int, out: Path) -> dict:
    """One float32 + int8 build of a family trained from scratch: its int8 drop and agreement with float32."""
    config = BuildConfig().override({"model.name": model, "model.size": FAMILY_SIZE, "model.weights": "none",
                                     "data.source": data, "train.epochs": epochs, "export.out": str(out),
                                     "quantize.int8": True})
    a = json.loads((build(config, log).run_dir / "report.json").read_text())["artifacts"]
    return {"float32_top1": round(a["float32"]["accuracy"], 4), "int8_top1": round(a["int8"]["accuracy"], 4),
            "int8_drop_points": round(100 * (a["float32"]["accuracy"] - a["int8"]["accuracy"]), 2),
            "int8_agreement": round(a["int8"]["agreement_with_float32"], 4),
            "int8_size_ratio": round(a["int8"]["bytes"] / a["float32"]["bytes"], 3),
            "int8_latency_ratio": round(a["int8"]["latency_ms"]["median"] / a["float32"]["latency_ms"]["median"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="cnn only, fewer epochs and images")
    args = parser.parse_args()
    epochs = 6 if args.quick else 20
    models = ["cnn"] if args.quick else list(MODELS)
    runs, families = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_photo_folder(tmp / "photos", 60 if args.quick else 200)
        for data_name, data in (("digits", "digits"), ("photos", str(photos))):
            for model in models:
                runs[f"{data_name}/{model}"] = run_pair(data, model, epochs, tmp / "runs")
                log(json.dumps({f"{data_name}/{model}": runs[f"{data_name}/{model}"]}))
            for model in FAMILIES:
                families[f"{data_name}/{model}"] = run_family(data, model, epochs, tmp / "runs")
                log(json.dumps({f"{data_name}/{model}": families[f"{data_name}/{model}"]}))
        big = build_models(tmp, ((1.0, 224),))
        size = {kind: big[f"mobilenet_v2_1.0_224_{kind}"].stat().st_size for kind in ("float32", "int8")}
        latency = {kind: bench(big[f"mobilenet_v2_1.0_224_{kind}"], threads=1, runs=50,
                               min_time=1.0 if args.quick else 3.0).stats.median_ms for kind in ("float32", "int8")}
    cpu = cpu_info()
    recoveries = [r["qat_recovery"] for r in runs.values() if r["qat_recovery"] is not None]
    print(json.dumps({
        "benchmark": "compression", "quick": args.quick, "epochs": epochs,
        "int8_size_ratio": round(size["int8"] / size["float32"], 3),
        "latency_ratio_224": round(latency["int8"] / latency["float32"], 3),
        # the <= 0.8 latency target holds only where the CPU has int8 dot-product instructions
        "cpu_int8_dot_product": cpu.int8_dot_product, "cpu_features": cpu.feature_list(),
        "pruned_gzip_ratio": max(r["pruned_gzip_ratio"] for r in runs.values()),
        "int8_drop_points": max(r["int8_drop_points"] for r in runs.values()),
        "int8_agreement": min(r["int8_agreement"] for r in runs.values()),
        "qat_recovery": min(recoveries) if recoveries else None,
        "mobilenet_v2_1.0_224_ms": {k: round(v, 3) for k, v in latency.items()},
        "family_int8_drop_points": {model: max(r["int8_drop_points"] for n, r in families.items() if n.endswith(model))
                                    for model in FAMILIES},
        "family_int8_agreement": {model: min(r["int8_agreement"] for n, r in families.items() if n.endswith(model))
                                  for model in FAMILIES},
        **{name: r for name, r in runs.items()},
        **{f"{name} @{FAMILY_SIZE}px": r for name, r in families.items()},
    }))


if __name__ == "__main__":
    main()
