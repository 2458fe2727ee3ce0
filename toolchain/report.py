"""report.json (schema-versioned, every figure measured) and its human-readable report.md."""
from __future__ import annotations

import html
import json
import os
import platform
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

SCHEMA = 1


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def _skipped_examples(skipped: list[dict], shown: int = 5) -> str:
    if not skipped:
        return ""
    listed = "; ".join(f"`{Path(s['path']).name}`: {s['reason']}" for s in skipped[:shown])
    return f" ({listed}{'; ... all in report.json' if len(skipped) > shown else ''})"


def markdown(report: dict) -> str:
    """Renders the report a person reads; states what pruning bought in measured numbers."""
    sections = (_artifacts_md, _choice_md, _pruning_md, _quantization_md, _calibration_md, _training_md, _stages_md)
    return "\n".join(line for section in sections for line in section(report)) + "\n"


def _artifacts_md(report: dict) -> list[str]:
    data, artifacts = report["dataset"], report["artifacts"]
    lines = [f"# edgeclf build: {report['model']['name']} @ {report['model']['size']}px", "",
             f"Data: `{data['root']}`: {data['train']} train / {data['val']} val images, "
             f"{len(data['classes'])} classes ({data.get('split', 'folders')}); augmentation "
             f"{data.get('augment', 'none')}, class weights {'auto' if data.get('class_weight') else 'none'}; "
             f"{len(data['skipped'])} files skipped{_skipped_examples(data['skipped'])}.", "",
             "| artifact | bytes | gzip bytes | top-1 | top-5 | agreement with float32 | latency median / p90 (ms) | input |",
             "|---|---|---|---|---|---|---|---|"]
    for a in artifacts.values():
        io = a["input"]
        quant = f"{io['dtype']} (scale {io['scale']:g}, zero point {io['zero_point']})" if io["scale"] else io["dtype"]
        lines.append(f"| `{Path(a['path']).name}` | {_kib(a['bytes'])} | {_kib(a['gzip_bytes'])} | "
                     f"{_pct(a['accuracy'])} | {_pct(a['top5'])} | {_pct(a['agreement_with_float32'])} | "
                     f"{a['latency_ms']['median']:.3f} / {a['latency_ms']['p90']:.3f} | {quant} |")
    latency = report.get("latency")
    if latency:
        lines += ["", f"Latency: {latency['threads']} thread on {latency['cpu']['name']} "
                      f"({latency['cpu']['feature_list']}; int8 dot product: "
                      f"{'yes' if latency['cpu']['int8_dot_product'] else 'no'})."]
        lines += [f"{note}" for note in latency["int8_notes"]]
    return lines


def _pruning_md(report: dict) -> list[str]:
    sparsity, artifacts = report["sparsity"], report["artifacts"]
    lines = ["", "## Pruning", ""]
    if sparsity["layers"] and any(layer["pruned"] for layer in sparsity["layers"].values()) and report.get("dense_reference"):
        dense = report.get("dense_reference")
        lines.append(f"Structure {sparsity.get('structure', 'unstructured')}; measured "
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
    xnnpack = report.get("xnnpack")
    if xnnpack:
        lines += ["", f"XNNPACK sparse inference (--prune-for xnnpack): {xnnpack['eligible_layers']} of "
                      f"{xnnpack['pointwise_layers']} 1x1 convolutions have at least 2/3 zeros; network pattern "
                      f"(3x3 stride-2 RGB stem ... global average pooling) "
                      f"{'supported' if xnnpack['pattern_ok'] else 'NOT supported'}. {xnnpack['platform_note'].capitalize()}."]
    lines += ["", "| layer | weights | sparsity | pruned | M:N groups conforming |", "|---|---|---|---|---|"]
    for name, layer in sparsity["layers"].items():
        conforming = f"{layer['m_by_n_conformance']:.3f}" if "m_by_n_conformance" in layer else "-"
        lines.append(f"| {name} | {layer['weights']} | {layer['sparsity']:.3f} | "
                     f"{'yes' if layer['pruned'] else 'no (kept dense)'} | {conforming} |")
    return lines


def _quantization_md(report: dict) -> list[str]:
    lines = []
    worst = (report.get("quantization_error") or {}).get("worst_layers") or []
    if worst:
        lines += ["", "## Layers with the largest int8 error", "",
                  "RMS error of each op's output in quantization steps (0.29 is rounding alone; much more points at "
                  "a layer to keep in float with --keep-float).", "",
                  "| op | tensor | RMS error (steps) | max error (steps) |", "|---|---|---|---|"]
        lines += [f"| {w['op']} | `{w['tensor']}` | {w['rmse_per_step']:.3f} | {w['max_error_per_step']:.3f} |"
                  for w in worst]
    gate = report.get("gate") or {}
    if gate.get("drop_points"):
        drops = ", ".join(f"{name} {drop:+.2f}" for name, drop in gate["drop_points"].items())
        verdict = ("no limit set (--max-drop)" if gate["max_drop"] is None
                   else "passed" if gate["passed"] else "FAILED: " + "; ".join(gate["failed"]))
        lines += ["", "## Quantization quality gate", "",
                  f"Top-1 drop against float32 in points: {drops}. Limit {gate['max_drop']}: {verdict}."]
    return lines


def _calibration_md(report: dict) -> list[str]:
    calibration = report.get("calibration")
    if not calibration:
        return []
    return (["", "## Calibration", "",
             f"{calibration['size']} images from {calibration.get('source', 'the training split')} "
             f"(class-stratified, seed {calibration['seed']}, no augmentation), "
             f"pixel range {calibration['pixel_range']}; per class: "
             + ", ".join(f"{k}: {v}" for k, v in calibration["per_class"].items()) + "."]
            + [f"- warning: {w}" for w in calibration.get("warnings", [])])


def _choice_heading(choice: dict) -> str:
    return (f"{choice['chosen']} chosen for {choice['budget_ms']:g} ms ({choice['variant']}, {choice['threads']} "
            f"thread(s), measured on {choice['measured_on']}); the finalists{_finalist_sizes(choice)} trained "
            f"{choice['trial_epochs']} epoch(s) "
            f"each, the last half at a tenth of the learning rate ({choice['trial_seconds']:.0f} s in all), and the "
            f"best of them fully ({choice.get('full_run_seconds', 0):.0f} s): the most accurate full run "
            + ("converted to full int8 (int8 top-1 with the runtime; a finalist whose brief run beat every full run's "
               "int8 top-1 is trained fully too) is the model." if _int8_judged(choice)
               else "is the model."))


def _int8_judged(choice: dict) -> bool:
    return any(c.get("full_run_int8_accuracy") is not None for c in choice["candidates"])


def _finalist_sizes(choice: dict) -> str:
    side = choice.get("image_side")
    return (f" (each family's widest at the smallest fitting size that covers the images' {side} px, else its largest)"
            if side else "")


def _choice_rows(choice: dict) -> list[list]:
    return [[c["candidate"], c["latency_ms"], c["bytes"] / 1024, "yes" if c["fits"] else "no",
             _percent(c["short_run_accuracy"]), _percent(c.get("full_run_accuracy")),
             _percent(c.get("full_run_int8_accuracy")), "chosen" if c["chosen"] else ""] for c in choice["candidates"]]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


CHOICE_HEADER = ["candidate", "latency ms", "KiB", "fits", "short-run top-1", "full-run top-1", "full-run int8 top-1",
                 ""]


def _choice_md(report: dict) -> list[str]:
    choice = report.get("model_choice")
    if not choice:
        return []
    lines = ["", "## Model choice", "", _choice_heading(choice), "", "| " + " | ".join(CHOICE_HEADER) + " |",
             "|---" * len(CHOICE_HEADER) + "|"]
    return lines + [f"| {c} | {ms:.3f} | {kib:.1f} | {fits} | {short} | {full} | {int8} | {chosen} |"
                    for c, ms, kib, fits, short, full, int8, chosen in _choice_rows(choice)]


def _training_md(report: dict) -> list[str]:
    training = report.get("training") or {}
    if not training:
        return []
    return ["", "## Training", ""] + [f"- {key.replace('_', ' ')}: {value}" for key, value in training.items()]


def _stages_md(report: dict) -> list[str]:
    return (["", "## Stages (seconds)", "", "| stage | seconds |", "|---|---|"]
            + [f"| {name} | {seconds:.1f} |" for name, seconds in report["stages"].items()])


def html_page(report: dict, confusions: dict[str, bytes], thumbnails: dict[str, bytes]) -> str:
    """report.html: the same measured figures as report.md, with the confusion matrices and flipped images."""
    from edgeclf.runtime import render

    artifacts = report["artifacts"]
    rows = [[a["path"], a["bytes"] / 1024, a["gzip_bytes"] / 1024, a["accuracy"], a["top5"], a["agreement_with_float32"],
             a["latency_ms"]["median"], a["latency_ms"]["p90"], a["input"]["dtype"]] for a in artifacts.values()]
    summary = render.table(["artifact", "KiB", "gzip KiB", "top-1", "top-5", "agreement with float32",
                            "median ms", "p90 ms", "input"], rows)
    charts = (render.bars_svg("median latency (1 thread)", [(a["path"], a["latency_ms"]["median"]) for a in artifacts.values()], "ms")
              + render.bars_svg("file size", [(a["path"], a["bytes"] / 1024) for a in artifacts.values()], "KiB"))
    sparsity = report["sparsity"]
    layers = render.table(["layer", "weights", "sparsity", "pruned"],
                          [[name, layer["weights"], layer["sparsity"], "yes" if layer["pruned"] else "no (kept dense)"]
                           for name, layer in sparsity["layers"].items()])
    matrices = "".join(render.figure(png, f"{name}: {artifacts[name]['path']}") for name, png in confusions.items())
    latency = report.get("latency")
    if latency:
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in latency["int8_notes"])
        charts += (f"<p>{latency['threads']} thread on {html.escape(latency['cpu']['name'])} "
                   f"({html.escape(latency['cpu']['feature_list'])})</p>{notes}")
    choice = report.get("model_choice")
    sections = [("Artifacts", summary), ("Latency and size", charts)]
    if choice:
        sections.append(("Model choice", f"<p>{html.escape(_choice_heading(choice))}</p>"
                                         + render.table(CHOICE_HEADER, _choice_rows(choice))))
    sections += [("Pruning", f"<p>measured sparsity {sparsity['overall']:.3f} over the pruned layers</p>{layers}"),
                 ("Confusion matrices", matrices)]
    for name, artifact in artifacts.items():
        if name == "float32":
            continue
        flipped = "".join(render.figure(thumbnails[f["path"]], f"{f['label']}: {f['reference']} → {f['other']} ({f['outcome']})",
                                        "thumb") for f in artifact["flips_vs_float32"][:200] if f["path"] in thumbnails)
        sections.append((f"{name}: predictions that differ from float32 ({len(artifact['flips_vs_float32'])})",
                         flipped or "<p>none</p>"))
    return render.page(f"edgeclf build: {report['model']['name']} @ {report['model']['size']}px", sections)


def environment(seed: int) -> dict:
    """env.json: the versions, CPU and platform a run was built with."""
    from edgeclf.runtime.bench import cpu_name

    return {"versions": _versions(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "seed": seed}


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("edgeclf", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
                    "numpy", "opencv-python-headless"):
        try:
            versions[package] = package_metadata.version(package)
        except package_metadata.PackageNotFoundError:
            continue
    return versions
