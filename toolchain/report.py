"""report.json (schema-versioned, every figure measured) and its human-readable report.md."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = 1


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def markdown(report: dict) -> str:
    """Renders the report a person reads; states what pruning bought in measured numbers."""
    data, artifacts = report["dataset"], report["artifacts"]
    lines = [f"# edgeclf build: {report['model']['name']} @ {report['model']['size']}px", "",
             f"Data: `{data['root']}`: {data['train']} train / {data['val']} val images, "
             f"{len(data['classes'])} classes; {len(data['skipped'])} files skipped.", "",
             "| artifact | bytes | gzip bytes | top-1 | top-5 | agreement with float32 | latency median / p90 (ms) | input |",
             "|---|---|---|---|---|---|---|---|"]
    for name, a in artifacts.items():
        io = a["input"]
        quant = f"{io['dtype']} (scale {io['scale']:g}, zero point {io['zero_point']})" if io["scale"] else io["dtype"]
        lines.append(f"| `{Path(a['path']).name}` | {_kib(a['bytes'])} | {_kib(a['gzip_bytes'])} | "
                     f"{_pct(a['accuracy'])} | {_pct(a['top5'])} | {_pct(a['agreement_with_float32'])} | "
                     f"{a['latency_ms']['median']:.3f} / {a['latency_ms']['p90']:.3f} | {quant} |")
    sparsity = report["sparsity"]
    lines += ["", "## Pruning", ""]
    if report["config"]["prune"]["sparsity"] > 0:
        dense = report.get("dense_reference")
        lines.append(f"Target sparsity {report['config']['prune']['sparsity']:.2f}; measured "
                     f"{sparsity['overall']:.3f} over the pruned layers "
                     f"({sparsity['overall_all_layers']:.3f} over every kernel). Kept dense: "
                     f"{', '.join(sparsity['dense_layers']) or 'none'}.")
        if dense:
            lines.append("")
            lines.append(
                f"What it bought on this machine: the float32 file gzips to {_kib(artifacts['float32']['gzip_bytes'])} "
                f"vs {_kib(dense['gzip_bytes'])} for the same model unpruned "
                f"({artifacts['float32']['gzip_bytes'] / dense['gzip_bytes']:.2f}x), a smaller download. "
                f"The raw file is the same size ({_kib(artifacts['float32']['bytes'])} vs {_kib(dense['bytes'])}) and "
                f"latency is {artifacts['float32']['latency_ms']['median']:.3f} ms vs {dense['latency_ms']['median']:.3f} ms "
                "unpruned: dense kernels compute the zeros too, so unstructured sparsity does not speed up inference.")
    else:
        lines.append("Not pruned (use --prune 0.5).")
    lines += ["", "| layer | weights | sparsity | pruned |", "|---|---|---|---|"]
    for name, layer in sparsity["layers"].items():
        lines.append(f"| {name} | {layer['weights']} | {layer['sparsity']:.3f} | {'yes' if layer['pruned'] else 'no (kept dense)'} |")
    calibration = report.get("calibration")
    if calibration:
        lines += ["", "## Calibration", "",
                  f"{calibration['size']} training images (class-stratified, seed {calibration['seed']}, no augmentation), "
                  f"pixel range {calibration['pixel_range']}; per class: "
                  + ", ".join(f"{k}: {v}" for k, v in calibration["per_class"].items()) + "."]
    lines += ["", "## Stages (seconds)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in report["stages"].items()]
    return "\n".join(lines) + "\n"
