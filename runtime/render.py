"""Figures and self-contained HTML pages for eval, compare and build reports, drawn with OpenCV and SVG.

No plotting library: the runtime must stay light enough for a Pi. Every page embeds its images
as data URIs, so one .html file can be mailed or attached to a CI run.
"""
from __future__ import annotations

import base64
import html
from typing import Any, Iterable, Sequence

import cv2
import numpy as np


def png(image_rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode PNG")
    return data.tobytes()


def confusion_png(matrix: np.ndarray, labels: Sequence[str], cell: int = 36) -> bytes:
    """The confusion matrix as a PNG: rows true class, columns predicted, shaded by row share."""
    size = len(labels)
    margin = 16 + 8 * min(12, max((len(label) for label in labels), default=1))
    canvas = np.full((margin + size * cell + 24, margin + size * cell + 8, 3), 255, np.uint8)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(size):
        for j in range(size):
            x, y = margin + j * cell, margin + i * cell
            shade = int(255 * (1 - shares[i, j]))
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), (200, 200, 200), 1)
            if matrix[i, j]:
                text = str(int(matrix[i, j]))
                (w, h), _ = cv2.getTextSize(text, font, 0.4, 1)
                cv2.putText(canvas, text, (x + (cell - w) // 2, y + (cell + h) // 2), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for k, label in enumerate(labels):
        short = label[:12]
        cv2.putText(canvas, short, (4, margin + k * cell + cell // 2 + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, short[:4], (margin + k * cell + 4, margin - 6), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "rows: true class, columns: predicted", (4, canvas.shape[0] - 8), font, 0.4, (80, 80, 80), 1,
                cv2.LINE_AA)
    return png(canvas)


def _plot_point(box: tuple, i: int, v: float) -> tuple[int, int]:
    """Pixel of (epoch i, value v) in a panel box (left, top, right, bottom, low, high, epochs)."""
    left, top, right, bottom, low, high, epochs = box
    x = left + int((right - left) * (i / max(1, epochs - 1)))
    return x, bottom - int((bottom - top) * (min(max(v, low), high) - low) / (high - low))


def curves_png(history: dict, width: int = 720, height: int = 300) -> bytes:
    """Training curves as a PNG: loss (left) and accuracy (right), training solid blue, validation orange,
    and a grey line where fine-tuning (stage 2) started."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    font, panel = cv2.FONT_HERSHEY_SIMPLEX, width // 2
    start = (history.get("fine_tune_start") or [None])[0]
    for p, metric in enumerate(("loss", "accuracy")):
        left, top, right, bottom = p * panel + 48, 28, (p + 1) * panel - 12, height - 32
        series = [(history.get(key) or [], colour) for key, colour in ((metric, (31, 119, 180)),
                                                                       (f"val_{metric}", (255, 127, 14)))]
        values = [v for values, _ in series for v in values if np.isfinite(v)]
        cv2.putText(canvas, metric, (left, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (left, top), (right, bottom), (180, 180, 180), 1)
        if not values:
            continue
        low, high = (0.0, 1.0) if metric == "accuracy" else (min(values), max(values))
        high = high if high > low else low + 1.0
        epochs = max(len(v) for v, _ in series)
        box = (left, top, right, bottom, low, high, epochs)
        if start:
            x = _plot_point(box, int(start), low)[0]
            cv2.line(canvas, (x, top), (x, bottom), (160, 160, 160), 1)
        for values_, colour in series:
            points = np.array([_plot_point(box, i, v) for i, v in enumerate(values_) if np.isfinite(v)], np.int32)
            if len(points):
                cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        for v, y in ((high, top), (low, bottom)):
            cv2.putText(canvas, f"{v:.2f}", (p * panel + 4, y + 4), font, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"epoch 1..{epochs}", (left, height - 12), font, 0.35, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(canvas, "train", (width - 150, 18), font, 0.45, (31, 119, 180), 1, cv2.LINE_AA)
    cv2.putText(canvas, "validation", (width - 100, 18), font, 0.45, (255, 127, 14), 1, cv2.LINE_AA)
    return png(canvas)


def thumbnail(image_rgb: np.ndarray, side: int = 64) -> bytes:
    interpolation = cv2.INTER_NEAREST if image_rgb.shape[0] < side else cv2.INTER_AREA
    return png(cv2.resize(image_rgb, (side, side), interpolation=interpolation))


def thumbnails(images: Any, paths: Sequence[str], wanted: Iterable[str]) -> dict[str, bytes]:
    """PNG thumbnails of the wanted images (by path) among `images` (indexable, in the order of `paths`)."""
    index = {path: i for i, path in enumerate(paths)}
    return {path: thumbnail(images[index[path]]) for path in wanted if path in index}


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def bars_svg(title: str, items: Sequence[tuple[str, float]], unit: str, width: int = 520) -> str:
    """A horizontal bar chart as inline SVG."""
    row, label_width = 26, 170
    peak = max((value for _, value in items), default=1.0) or 1.0
    height = 30 + row * len(items)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for k, (name, value) in enumerate(items):
        y = 26 + k * row
        length = (width - label_width - 90) * value / peak
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(name[-26:])}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="16" fill="#4a7fc1"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 15}" font-size="12">{value:.3g} {unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figure(png_bytes: bytes, caption: str, css_class: str = "figure") -> str:
    return (f'<figure class="{css_class}"><img src="{data_uri(png_bytes)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}figure{display:inline-block;margin:6px;text-align:center}
figcaption{font-size:12px;color:#555;max-width:220px;word-wrap:break-word}"""

# Counts the figures that really decoded, so a headless browser test can check them.
_SCRIPT = """<script>window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}}
document.body.setAttribute('data-images-loaded',ok);
document.body.setAttribute('data-charts',document.querySelectorAll('svg.chart').length);});</script>"""


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete self-contained HTML page from (heading, html) sections."""
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}{_SCRIPT}</body></html>")


def per_class_table(per_class: dict) -> str:
    return table(["class", "support", "precision", "recall", "F1"],
                 [[label, s["support"], s["precision"], s["recall"], s["f1"]] for label, s in per_class.items()])


def eval_page(result: dict, confusion: bytes, thumbnails: dict[str, bytes]) -> str:
    """The `eval --html` page: summary, per-class table, confusion matrix, misclassified images."""
    summary = table(["model", "data", "images", "top-1", "top-5", "skipped"],
                    [[result["model"], result["data"], result["images"], result["accuracy"], result["top5"],
                      len(result["skipped"])]])
    wrong = "".join(figure(thumbnails[m["path"]], f"{m['label']} → {m['predicted']} ({m['score']:.2f})", "thumb")
                    for m in result["misclassified"][:200] if m["path"] in thumbnails)
    return page(f"edgeclf eval: {result['model']}", [
        ("Summary", summary), ("Per class", per_class_table(result["per_class"])),
        ("Confusion matrix", figure(confusion, "confusion matrix")),
        (f"Misclassified ({len(result['misclassified'])})", wrong or "<p>none</p>")])


def compare_page(result: dict, confusions: list[bytes], thumbnails: dict[str, bytes]) -> str:
    """The `compare --html` page: models side by side, flips as thumbnails, latency and size charts."""
    models = result["models"]
    summary = table(["model", "KiB", "top-1", "diff (pts)", "agreement", "mean KL", "mean cosine", "median ms"],
                    [[m["model"], m["bytes"] / 1024, m["accuracy"], m["difference_pts"], m["agreement"], m["mean_kl"],
                      m["mean_cosine"], m["median_ms"]] for m in models])
    labels = list(models[0]["per_class_recall_diff_pts"])
    per_class = table(["class", *[f"recall diff (pts) {m['model'][-30:]}" for m in models[1:]]],
                      [[label, *[m["per_class_recall_diff_pts"][label] for m in models[1:]]] for label in labels])
    charts = (bars_svg("median latency", [(m["model"], m["median_ms"]) for m in models], "ms")
              + bars_svg("file size", [(m["model"], m["bytes"] / 1024) for m in models], "KiB"))
    matrices = "".join(figure(png_bytes, m["model"]) for png_bytes, m in zip(confusions, models))
    sections = [("Models", summary), ("Latency and size", charts), ("Per-class recall change", per_class),
                ("Confusion matrices", matrices)]
    for m in models[1:]:
        flipped = "".join(figure(thumbnails[f["path"]], f"{f['label']}: {f['reference']} → {f['other']} ({f['outcome']})",
                                 "thumb") for f in m["flips"][:200] if f["path"] in thumbnails)
        sections.append((f"Flipped vs the first model: {m['model']} ({len(m['flips'])})", flipped or "<p>none</p>"))
    return page(f"edgeclf compare on {result['data']}", sections)
