"""report.json (schema-versioned, every figure measured) and its human-readable report.md."""
from __future__ import annotations

import html
import json
import os
import platform
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Sequence

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
        lines += [f"- warning: {warning}" for warning in latency.get("xnnpack_warnings", [])]
    xnnpack = [(a["path"], a["xnnpack"]) for a in artifacts.values() if a.get("xnnpack")]
    if xnnpack:
        lines += ["", "How the interpreter runs each artifact (XNNPACK, or TFLite's built-in kernels):", "",
                  "| artifact | XNNPACK partitions | ops in XNNPACK | ops outside |", "|---|---|---|---|"]
        lines += [f"| `{path}` | {x['xnnpack_partitions']} | {sum(x['delegated'].values())} of {x['ops']} | "
                  + (", ".join(f"{op} x{count}" for op, count in x["outside"].items()) or "none")
                  + (" (input/output only)" if x["outside"] and x["outside_only_at_edges"] else "") + " |"
                  for path, x in xnnpack]
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


# The sections of report.html, in order: every build shows each one, with "not run" where it has no data.
HTML_SECTIONS = ("Summary", "Data", "Training", "Model choice", "Latency and size", "Pruning",
                 "Quantization", "Calibration", "Quality gate", "Per class", "Confusion matrices",
                 "Predictions that differ from float32", "Stages", "Environment")

SAMPLES_PER_CLASS = 4


def class_samples(images: Any, labels: Any, classes: Sequence[str], per_class: int = SAMPLES_PER_CLASS) -> dict[str, list[bytes]]:
    """A few PNG thumbnails per class (the first validation images of each), for report.html's data section."""
    from edgeclf.runtime.render import thumbnail

    samples: dict[str, list[bytes]] = {}
    for index, name in enumerate(classes):
        picked = [i for i, label in enumerate(labels) if label == index][:per_class]
        samples[name] = [thumbnail(images[i]) for i in picked]
    return samples


def html_page(report: dict, confusions: dict[str, bytes], thumbnails: dict[str, bytes],
              samples: dict[str, list[bytes]] | None = None, env: dict | None = None) -> str:
    """report.html: everything report.md says and more, drawn: curves, the data, the model choice, the figures;
    each section of HTML_SECTIONS is there, saying "not run" where the build did not do it.

    Args:
        report: report.json's content.
        confusions: variant -> confusion matrix PNG.
        thumbnails: validation image path -> PNG, for the images whose prediction flipped.
        samples: class -> a few PNG thumbnails (class_samples).
        env: env.json's content (versions, CPU, platform, seed).
    """
    from edgeclf.runtime import render

    parts = {
        "Summary": _summary_html(report), "Data": _data_html(report, samples or {}),
        "Training": _training_html(report), "Model choice": _choice_html(report),
        "Latency and size": _latency_html(report), "Pruning": _pruning_html(report),
        "Quantization": _quantization_html(report), "Calibration": _calibration_html(report),
        "Quality gate": _gate_html(report), "Per class": _per_class_html(report),
        "Confusion matrices": "".join(render.figure(png, f"{name}: {report['artifacts'][name]['path']}")
                                      for name, png in confusions.items()) or render.not_run("no artifact evaluated"),
        "Predictions that differ from float32": _flips_html(report, thumbnails),
        "Stages": _stages_html(report), "Environment": _environment_html(report, env),
    }
    title = f"edgeclf build: {report['model']['name']} @ {report['model']['size']}px"
    return render.page(title, [(name, parts[name]) for name in HTML_SECTIONS], toc=True)


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def _summary_html(report: dict) -> str:
    from edgeclf.runtime import render

    rows = []
    for a in report["artifacts"].values():
        io = a["input"]
        quant = f"{io['dtype']} (scale {io['scale']:g}, zero point {io['zero_point']})" if io["scale"] else io["dtype"]
        rows.append([a["path"], _kib(a["bytes"]), _kib(a["gzip_bytes"]), _pct(a["accuracy"]), _pct(a["top5"]),
                     _pct(a["agreement_with_float32"]), f"{a['latency_ms']['median']:.3f}", f"{a['latency_ms']['p90']:.3f}",
                     quant] + ([_pct(a.get("test_accuracy"))] if "test" in report["dataset"] else []))
    header = ["artifact", "size", "gzip size", "top-1", "top-5", "agreement with float32", "median ms", "p90 ms",
              "input"] + (["test top-1"] if "test" in report["dataset"] else [])
    created = report.get("created", "")
    return (_p(f"Built {created.replace('T', ' ')}; {report['model']['name']} at {report['model']['size']} px, "
               f"{report['model'].get('parameters', 0):,} parameters; top-1 and agreement on the "
               f"{report['dataset']['val']} validation images, measured with the runtime.")
            + render.table(header, rows))


def _data_html(report: dict, samples: dict[str, list[bytes]]) -> str:
    from edgeclf.runtime import render

    data = report["dataset"]
    text = (f"{data['root']}: {data['train']} train / {data['val']} val"
            + (f" / {data['test']} test" if "test" in data else "")
            + f" images, {len(data['classes'])} classes (split: {data.get('split', 'folders')}); augmentation "
            f"{data.get('augment', 'none')}, class weights {'auto' if data.get('class_weight') else 'none'}.")
    per_class = data.get("per_class") or {}
    colours = {"train": render.TRAIN_COLOUR, "val": render.VAL_COLOUR, "test": "#2ca02c"}
    chart = render.grouped_bars_svg("images per class", data["classes"],
                                    [(split, [counts.get(c, 0) for c in data["classes"]], colours.get(split, "#888"))
                                     for split, counts in per_class.items()], "") if per_class else ""
    weights = data.get("class_weight")
    weight_table = (render.table(["class", "loss weight"], [[c, f"{w:.3f}"] for c, w in weights.items()])
                    if weights else "")
    skipped = data["skipped"]
    skipped_html = (f"<h3>Skipped files ({len(skipped)})</h3>"
                    + (render.table(["file", "reason"], [[s["path"], s["reason"]] for s in skipped], wrap=True)
                       if skipped else "<p>none: every file was read.</p>"))
    cache = data.get("cache")
    cache_html = (_p(f"Image cache: {cache.get('decoded', 0)} decoded, {cache.get('reused', 0)} reused, "
                     f"{cache.get('dropped', 0)} dropped.") if cache else "")
    shown = "".join(f'<div class="samples"><b>{html.escape(name)}</b><br>'
                    + "".join(f'<img src="{render.data_uri(png)}" alt="{html.escape(name)}" width="48" height="48">'
                              for png in pngs) + "</div>"
                    for name, pngs in samples.items() if pngs)
    samples_html = (f"<h3>A few validation images per class</h3>{shown}" if shown
                    else "<h3>A few validation images per class</h3>" + render.not_run("no images were kept for the page"))
    return _p(text) + chart + weight_table + cache_html + skipped_html + samples_html


def _curves(history: dict, what: str) -> str:
    """Loss and accuracy per epoch, training and validation, with fine-tuning's start marked."""
    from edgeclf.runtime import render

    start = (history.get("fine_tune_start") or [None])[0]
    marks = [(float(start), "fine-tuning starts")] if start else []
    charts = []
    for metric, percent in (("loss", False), ("accuracy", True)):
        series = [(name, history[key], colour) for key, name, colour in
                  ((metric, "train", render.TRAIN_COLOUR), (f"val_{metric}", "validation", render.VAL_COLOUR))
                  if history.get(key)]
        if series:
            charts.append(render.curve_svg(f"{what}: {metric}", series, percent=percent, marks=marks))
    return '<div class="curves">' + "".join(charts) + "</div>"


def _epochs_line(history: dict, what: str) -> str:
    epochs = len(history.get("loss") or [])
    seconds = sum(history.get("seconds") or [])
    best = max(history.get("val_accuracy") or [0.0])
    return _p(f"{what}: {epochs} epoch(s), {seconds:.1f} s in epochs, best validation accuracy {_pct(best)}.")


def _training_html(report: dict) -> str:
    history = (report.get("history") or {}).get("train") or {}
    notes = report.get("training") or {}
    if not history.get("loss"):
        return render_not_run("no training history (the model was trained elsewhere or resumed)")
    listed = ("<ul>" + "".join(f"<li>{html.escape(k.replace('_', ' '))}: {html.escape(str(v))}</li>"
                               for k, v in notes.items()) + "</ul>") if notes else ""
    start = (history.get("fine_tune_start") or [None])[0]
    stages = (f"two stages: the head on the frozen base for {int(start)} epoch(s), then fine-tuning"
              if start else "one stage (the whole model)")
    return _epochs_line(history, f"Training in {stages}") + listed + _curves(history, "training")


def render_not_run(reason: str) -> str:
    from edgeclf.runtime import render

    return render.not_run(reason)


def _choice_html(report: dict) -> str:
    from edgeclf.runtime import render

    choice = report.get("model_choice")
    if not choice:
        return render_not_run("no --latency-budget; the model was named (--model)")
    points = []
    for c in choice["candidates"]:
        accuracy = next((c.get(k) for k in ("full_run_int8_accuracy", "full_run_accuracy", "short_run_accuracy")
                         if c.get(k) is not None), None)
        if accuracy is not None:
            points.append({"x": c["latency_ms"], "y": accuracy, "label": c["candidate"],
                           "kind": "chosen" if c["chosen"] else "fits" if c["fits"] else "out"})
    chart = (render.scatter_svg(f"candidates: latency ({choice['variant']}, {choice['threads']} thread(s)) and top-1",
                                points, "latency ms on the device", "top-1 (best run)",
                                vline=(choice["budget_ms"], f"budget {choice['budget_ms']:g} ms"))
             if points else "")
    rows = [[c, f"{ms:.3f}", f"{kib:.1f}", fits, short, full, int8, chosen]
            for c, ms, kib, fits, short, full, int8, chosen in _choice_rows(choice)]
    return (_p(_choice_heading(choice)) + chart
            + _p("Each point is a candidate that was trained: its best top-1 (int8 full run, else float32 full run, "
                 "else brief run) against its latency; the dashed line is the budget.")
            + render.table(CHOICE_HEADER, rows))


def _latency_html(report: dict) -> str:
    from edgeclf.runtime import render

    artifacts = report["artifacts"]
    charts = (render.bars_svg("median latency (1 thread)", [(a["path"], a["latency_ms"]["median"]) for a in artifacts.values()], "ms")
              + render.bars_svg("file size", [(a["path"], a["bytes"] / 1024) for a in artifacts.values()], "KiB")
              + render.bars_svg("gzip size (download)", [(a["path"], a["gzip_bytes"] / 1024) for a in artifacts.values()],
                                "KiB"))
    latency = report.get("latency")
    if not latency:
        return charts + _delegation_html(artifacts)
    cpu = latency["cpu"]
    return (charts + _p(f"Latency: {latency['threads']} thread on {cpu['name']} ({cpu['feature_list']}; int8 dot "
                        f"product: {'yes' if cpu['int8_dot_product'] else 'no'}).")
            + "".join(_p(note) for note in latency["int8_notes"])
            + "".join(f'<p class="warning">warning: {html.escape(w)}</p>' for w in latency.get("xnnpack_warnings", []))
            + _delegation_html(artifacts))


def _delegation_html(artifacts: dict) -> str:
    """How the interpreter runs each artifact (report.json `xnnpack` per artifact, where the build recorded it)."""
    from edgeclf.runtime import render

    rows = [[a["path"], x["xnnpack_partitions"], f"{sum(x['delegated'].values())} of {x['ops']}",
             (", ".join(f"{op} x{count}" for op, count in x["outside"].items()) or "none")
             + (" (input/output only)" if x["outside"] and x["outside_only_at_edges"] else "")]
            for a in artifacts.values() if (x := a.get("xnnpack"))]
    if not rows:
        return ""
    return (_p("How the interpreter runs each artifact (XNNPACK, or TFLite's built-in kernels):")
            + render.table(["artifact", "XNNPACK partitions", "ops in XNNPACK", "ops outside"], rows, wrap=True))


def _pruning_html(report: dict) -> str:
    from edgeclf.runtime import render

    sparsity, artifacts = report["sparsity"], report["artifacts"]
    parts = []
    if was_pruned(report):
        parts.append(_p(f"Structure {sparsity.get('structure', 'unstructured')}; measured sparsity "
                        f"{_pct(sparsity['overall'])} over the pruned layers ({_pct(sparsity['overall_all_layers'])} "
                        f"over every kernel). Kept dense: {', '.join(sparsity['dense_layers']) or 'none'}."))
        dense = report.get("dense_reference")
        if dense:
            parts.append(_p(
                f"What it bought on this machine: the float32 file gzips to {_kib(artifacts['float32']['gzip_bytes'])} "
                f"vs {_kib(dense['gzip_bytes'])} for the same model unpruned "
                f"({artifacts['float32']['gzip_bytes'] / dense['gzip_bytes']:.2f}x), a smaller download. The raw file is "
                f"the same size ({_kib(artifacts['float32']['bytes'])} vs {_kib(dense['bytes'])}) and latency is "
                f"{artifacts['float32']['latency_ms']['median']:.3f} ms vs {dense['latency_ms']['median']:.3f} ms "
                "unpruned: dense kernels compute the zeros too, so unstructured sparsity does not speed up inference."))
    else:
        parts.append(render_not_run("not pruned (use --prune 0.5)"))
    xnnpack = report.get("xnnpack")
    if xnnpack:
        parts.append(_p(f"XNNPACK sparse inference (--prune-for xnnpack): {xnnpack['eligible_layers']} of "
                        f"{xnnpack['pointwise_layers']} 1x1 convolutions have at least 2/3 zeros; network pattern "
                        f"(3x3 stride-2 RGB stem ... global average pooling) "
                        f"{'supported' if xnnpack['pattern_ok'] else 'NOT supported'}. "
                        f"{xnnpack['platform_note'].capitalize()}."))
    if sparsity["layers"]:
        parts.append(render.table(
            ["layer", "weights", "sparsity", "pruned", "M:N groups conforming"],
            [[name, layer["weights"], _pct(layer["sparsity"]), "yes" if layer["pruned"] else "no (kept dense)",
              _pct(layer["m_by_n_conformance"]) if "m_by_n_conformance" in layer else "-"]
             for name, layer in sparsity["layers"].items()]))
    history = (report.get("history") or {}).get("prune") or {}
    if history.get("loss"):
        parts.append(_epochs_line(history, "Pruning fine-tuning") + _curves(history, "pruning"))
    return "".join(parts)


def was_pruned(report: dict) -> bool:
    """Whether the build pruned: a layer marked prunable alone is not enough (an unpruned build marks them too)."""
    target = ((report.get("config") or {}).get("prune") or {}).get("sparsity") or 0
    return bool(report.get("dense_reference")) or target > 0


def _quantization_html(report: dict) -> str:
    from edgeclf.runtime import render

    worst = (report.get("quantization_error") or {}).get("worst_layers") or []
    int8 = [a["path"] for a in report["artifacts"].values() if a["float_ops"] == 0]
    parts = [_p(f"Full-integer artifacts: {', '.join(int8)}.") if int8 else ""]
    if worst:
        parts.append("<h3>Layers with the largest int8 error</h3>"
                     + _p("RMS error of each op's output in quantization steps (0.29 is rounding alone; much more "
                          "points at a layer to keep in float with --keep-float).")
                     + render.table(["op", "tensor", "RMS error (steps)", "max error (steps)"],
                                    [[w["op"], w["tensor"], f"{w['rmse_per_step']:.3f}", f"{w['max_error_per_step']:.3f}"]
                                     for w in worst], wrap=True))
    else:
        parts.append(render_not_run("no int8 conversion (use --int8)"))
    history = (report.get("history") or {}).get("qat") or {}
    if history.get("loss"):
        parts.append(_epochs_line(history, "Quantization-aware fine-tuning (--qat)") + _curves(history, "QAT"))
    return "".join(parts)


def _calibration_html(report: dict) -> str:
    from edgeclf.runtime import render

    calibration = report.get("calibration")
    if not calibration:
        return render_not_run("no int8 conversion, so no representative set (use --int8)")
    per_class = calibration["per_class"]
    return (_p(f"{calibration['size']} images from {calibration.get('source', 'the training split')} "
               f"(class-stratified, seed {calibration['seed']}, no augmentation), pixel range "
               f"{calibration['pixel_range']}.")
            + render.bars_svg("calibration images per class", list(per_class.items()), "")
            + "".join(f'<p class="warning">warning: {html.escape(w)}</p>' for w in calibration.get("warnings", [])))


def _gate_html(report: dict) -> str:
    gate = report.get("gate") or {}
    if not gate.get("drop_points"):
        return render_not_run("no int8-weight variant to hold against float32")
    drops = ", ".join(f"{name} {drop:+.2f}" for name, drop in gate["drop_points"].items())
    verdict = ("no limit set (--max-drop)" if gate["max_drop"] is None
               else "passed" if gate["passed"] else "FAILED: " + "; ".join(gate["failed"]))
    return _p(f"Top-1 drop against float32 in points: {drops}. Limit {gate['max_drop']}: {verdict}.")


def _per_class_html(report: dict) -> str:
    from edgeclf.runtime import render

    artifacts = report["artifacts"]
    header = ["class", "support"] + [f"{name} {what}" for name in artifacts for what in ("precision", "recall")]
    rows = []
    for label in report["dataset"]["classes"]:
        first = next(iter(artifacts.values()))["per_class"].get(label, {})
        row = [label, first.get("support", 0)]
        for a in artifacts.values():
            stats = a["per_class"].get(label, {})
            row += [_pct(stats.get("precision")), _pct(stats.get("recall"))]
        rows.append(row)
    return render.table(header, rows)


def _flips_html(report: dict, thumbnails: dict[str, bytes]) -> str:
    from edgeclf.runtime import render

    parts = []
    for name, artifact in report["artifacts"].items():
        if name == "float32":
            continue
        flips = artifact["flips_vs_float32"]
        shown = "".join(render.figure(thumbnails[f["path"]], f"{f['label']}: {f['reference']} → {f['other']} ({f['outcome']})",
                                      "thumb") for f in flips[:200] if f["path"] in thumbnails)
        parts.append(f"<h3>{html.escape(name)} ({len(flips)})</h3>" + (shown or "<p>none</p>"))
    return "".join(parts) or render_not_run("only float32 was built")


def _stages_html(report: dict) -> str:
    from edgeclf.runtime import render

    stages = report["stages"]
    return (render.bars_svg("seconds per stage", list(stages.items()), "s")
            + render.table(["stage", "seconds"], [[name, f"{seconds:.1f}"] for name, seconds in stages.items()])
            + _p(f"{sum(stages.values()):.1f} s in these stages (the report stage itself is not timed)."))


def _environment_html(report: dict, env: dict | None) -> str:
    from edgeclf.runtime import render

    rows = []
    cpu = (report.get("latency") or {}).get("cpu")
    if cpu:
        rows += [["CPU", f"{cpu['name']} ({cpu['machine']}, {cpu['bits']}-bit, {cpu['cores']} cores)"],
                 ["CPU features", cpu["feature_list"]], ["int8 dot product", "yes" if cpu["int8_dot_product"] else "no"]]
    if env:
        rows += [["platform", env.get("platform", "")], ["seed", env.get("seed", "")]]
        rows += [[package, version] for package, version in (env.get("versions") or {}).items()]
    return render.table(["", ""], rows) if rows else render_not_run("env.json was not found")


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
