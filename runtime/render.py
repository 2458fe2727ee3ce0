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
    """A horizontal bar chart as inline SVG; it scales down to the page width (viewBox)."""
    return grouped_bars_svg(title, [name for name, _ in items], [("", [value for _, value in items], "#4a7fc1")],
                            unit, width)


def grouped_bars_svg(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], unit: str,
                     width: int = 520) -> str:
    """Horizontal bars, one group per label and one bar per series (name, values, colour), with a legend when
    there is more than one series."""
    bar, label_width = 16, 170
    row = bar * len(series) + 10
    peak = max((v for _, values, _ in series for v in values), default=1.0) or 1.0
    legend = 18 if len(series) > 1 else 0
    height = 30 + legend + row * len(labels)
    parts = [_svg_open(title, width, height), f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    x = 0
    for name, _, colour in series if len(series) > 1 else ():
        parts.append(f'<rect x="{x}" y="26" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="37" font-size="12">{html.escape(name)}</text>')
        x += 30 + 8 * len(name)
    for k, label in enumerate(labels):
        y = 26 + legend + k * row
        parts.append(f'<text x="0" y="{y + 4 + bar * len(series) / 2 + 4:.0f}" font-size="12">{html.escape(label[-26:])}</text>')
        for s, (_, values, colour) in enumerate(series):
            value = values[k]
            length = (width - label_width - 90) * value / peak
            top = y + 3 + s * bar
            parts.append(f'<rect x="{label_width}" y="{top}" width="{length:.1f}" height="{bar - 2}" fill="{colour}"/>')
            parts.append(f'<text x="{label_width + length + 6:.1f}" y="{top + bar - 4}" font-size="12">'
                         f'{value:.3g} {html.escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(title: str, width: int, height: int) -> str:
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{html.escape(title)}">')


TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#ff7f0e"


def curve_svg(title: str, series: Sequence[tuple[str, Sequence[float], str]], percent: bool = False,
              marks: Sequence[tuple[float, str]] = (), width: int = 420, height: int = 220) -> str:
    """Lines over epochs as inline SVG: series of (name, one value per epoch, colour); `marks` are dashed vertical
    lines at an epoch index (e.g. where fine-tuning started) with their label; `percent` draws 0-100%."""
    left, top, right, bottom = 44, 40, width - 10, height - 28
    values = [v for _, vs, _ in series for v in vs if np.isfinite(v)]
    epochs = max((len(vs) for _, vs, _ in series), default=0)
    low, high = (0.0, 1.0) if percent else (min(values, default=0.0), max(values, default=1.0))
    high = high if high > low else low + 1.0

    def point(i: float, v: float) -> str:
        x = left + (right - left) * (i / max(1, epochs - 1))
        return f"{x:.1f},{bottom - (bottom - top) * (min(max(v, low), high) - low) / (high - low):.1f}"

    def tick(v: float) -> str:
        return f"{100 * v:.0f}%" if percent else f"{v:.3g}"

    parts = [_svg_open(title, width, height), f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#bbb"/>']
    x = left
    for name, _, colour in series:
        parts.append(f'<line x1="{x}" y1="29" x2="{x + 14}" y2="29" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{x + 18}" y="33" font-size="11">{html.escape(name)}</text>')
        x += 30 + 7 * len(name)
    for v, y in ((high, top), (low, bottom)):
        parts.append(f'<text x="{left - 4}" y="{y + 4}" font-size="10" text-anchor="end" fill="#555">{tick(v)}</text>')
    parts.append(f'<text x="{left}" y="{height - 10}" font-size="10" fill="#555">epoch 1</text>'
                 f'<text x="{right}" y="{height - 10}" font-size="10" fill="#555" text-anchor="end">{epochs}</text>')
    for at, label in marks:
        x = left + (right - left) * (at / max(1, epochs - 1))
        parts.append(f'<line class="mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#888" '
                     f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{top + 12}" font-size="10" fill="#555">'
                     f'{html.escape(label)}</text>')
    for name, vs, colour in series:
        points = " ".join(point(i, v) for i, v in enumerate(vs) if np.isfinite(v))
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(title: str, points: Sequence[dict], x_label: str, y_label: str, vline: tuple[float, str] | None = None,
                note: str = " (chosen)", width: int = 460, height: int = 280) -> str:
    """Points (x, y as a fraction shown in %, label, kind: "chosen", "fits" or "out") as inline SVG, the chosen
    one labelled with its name and `note`, with an optional dashed vertical line (value, label), e.g. a budget."""
    left, top, right, bottom = 48, 28, width - 16, height - 36
    xs = [p["x"] for p in points] + ([vline[0]] if vline else [])
    x_high = max(xs, default=1.0) * 1.1 or 1.0
    ys = [p["y"] for p in points]
    y_low = max(0.0, min(ys, default=0.0) - 0.05)
    y_high = min(1.0, max(ys, default=1.0) + 0.05)
    y_high = y_high if y_high > y_low else y_low + 0.1

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (right - left) * x / x_high, bottom - (bottom - top) * (y - y_low) / (y_high - y_low))

    parts = [_svg_open(title, width, height), f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#bbb"/>',
             f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end" fill="#555">{100 * y_high:.0f}%</text>',
             f'<text x="{left - 4}" y="{bottom + 4}" font-size="10" text-anchor="end" fill="#555">{100 * y_low:.0f}%</text>',
             f'<text x="{left}" y="{bottom + 14}" font-size="10" fill="#555">0</text>',
             f'<text x="{right}" y="{bottom + 14}" font-size="10" fill="#555" text-anchor="end">{x_high:.3g}</text>',
             f'<text x="{(left + right) / 2:.0f}" y="{height - 6}" font-size="11" text-anchor="middle">'
             f'{html.escape(x_label)}</text>',
             f'<text x="10" y="{(top + bottom) / 2:.0f}" font-size="11" text-anchor="middle" '
             f'transform="rotate(-90 10 {(top + bottom) / 2:.0f})">{html.escape(y_label)}</text>']
    if vline:
        x = at(vline[0], y_low)[0]
        parts.append(f'<line class="budget" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#c0392b" '
                     f'stroke-dasharray="5 3"/><text x="{x + 3:.1f}" y="{top + 12}" font-size="10" fill="#c0392b">'
                     f'{html.escape(vline[1])}</text>')
    style = {"chosen": ("#2ca02c", 7), "fits": ("#4a7fc1", 4), "out": ("#aaa", 4)}
    for p in sorted(points, key=lambda p: p["kind"] == "chosen"):
        colour, radius = style[p["kind"]]
        x, y = at(p["x"], p["y"])
        parts.append(f'<circle class="{p["kind"]}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}">'
                     f'<title>{html.escape(p["label"])}</title></circle>')
        if p["kind"] == "chosen":
            anchor = "end" if x > (left + right) / 2 else "start"
            dx = -10 if anchor == "end" else 10
            parts.append(f'<text x="{x + dx:.1f}" y="{y + 4:.1f}" font-size="11" font-weight="bold" '
                         f'text-anchor="{anchor}">{html.escape(p["label"] + note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], wrap: bool = False) -> str:
    """An HTML table in a box that scrolls sideways on a narrow screen; cells are escaped, floats shown to 4
    significant digits (pass a formatted string where a value is a percentage). `wrap` lets long names (file
    paths, tensor names) break anywhere so that the table fits a phone."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    css = ' class="wrap"' if wrap else ""
    return scroll(f"<table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figure(png_bytes: bytes, caption: str, css_class: str = "figure") -> str:
    return (f'<figure class="{css_class}"><img src="{data_uri(png_bytes)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_STYLE = """body{font-family:system-ui,sans-serif;margin:16px;color:#222;max-width:1100px;line-height:1.4}
h1{font-size:1.5em;overflow-wrap:anywhere}h2{border-bottom:1px solid #ddd;padding-bottom:2px;margin-top:1.6em}
.scroll{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
table.wrap td{overflow-wrap:anywhere;text-align:left}
figure{display:inline-block;margin:6px;text-align:center;max-width:100%}img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555;max-width:220px;word-wrap:break-word}
svg.chart{max-width:100%;height:auto;display:block;margin:8px 0}.thumb img,.samples img{image-rendering:pixelated}
.curves svg.chart{display:inline-block;margin-right:12px;vertical-align:top}.samples{display:inline-block;margin:0 14px 8px 0;font-size:13px}.samples img{margin:1px}
.not-run{color:#777;font-style:italic}nav.toc{font-size:14px}nav.toc a{margin-right:10px;white-space:nowrap}
p,li{overflow-wrap:anywhere}
@media (max-width:600px){body{margin:8px;font-size:15px}td,th{padding:2px 4px;font-size:13px}figure{margin:3px}}
@media print{body{margin:0;max-width:none;font-size:11pt}nav.toc{display:none}.scroll{overflow:visible}
section{break-inside:auto}h2{break-after:avoid}figure,svg.chart,tr{break-inside:avoid}a{color:inherit}}"""

# Counts the figures that really decoded, so a headless browser test can check them, and whether the page is
# wider than the window (it must not scroll sideways on a phone).
_SCRIPT = """<script>window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}}
var b=document.body,d=document.documentElement;b.setAttribute('data-images-loaded',ok);
b.setAttribute('data-charts',document.querySelectorAll('svg.chart').length);
b.setAttribute('data-overflow-x',Math.max(d.scrollWidth,b.scrollWidth)-d.clientWidth);});</script>"""


def scroll(table_html: str) -> str:
    """A table in a box that scrolls sideways on its own when it is wider than a phone, so the page does not."""
    return f'<div class="scroll">{table_html}</div>'


def not_run(reason: str) -> str:
    return f'<p class="not-run">not run: {html.escape(reason)}</p>'


def slug(heading: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")[:40] or "section"


def page(title: str, sections: Sequence[tuple[str, str]], toc: bool = False) -> str:
    """A complete self-contained HTML page from (heading, html) sections, each a <section id=slug(heading)>;
    `toc` adds links to the sections at the top. Readable on a phone and printable."""
    body = "".join(f'<section id="{slug(heading)}"><h2>{html.escape(heading)}</h2>{content}</section>'
                   for heading, content in sections)
    links = ('<nav class="toc">' + "".join(f'<a href="#{slug(h)}">{html.escape(h)}</a> ' for h, _ in sections)
             + "</nav>") if toc else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{links}{body}{_SCRIPT}</body></html>")


def percent(value: float | None) -> str:
    """A fraction as the percentage a person reads (0.9861 -> 98.61%)."""
    return "-" if value is None else f"{100 * value:.2f}%"


def per_class_table(per_class: dict) -> str:
    return table(["class", "support", "precision", "recall", "F1"],
                 [[label, s["support"], percent(s["precision"]), percent(s["recall"]), percent(s["f1"])]
                  for label, s in per_class.items()])


def eval_page(result: dict, confusion: bytes, thumbnails: dict[str, bytes]) -> str:
    """The `eval --html` page: summary, per-class table, confusion matrix, misclassified images."""
    summary = table(["model", "data", "images", "top-1", "top-5", "skipped"],
                    [[result["model"], result["data"], result["images"], percent(result["accuracy"]),
                      percent(result["top5"]), len(result["skipped"])]])
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
                    [[m["model"], m["bytes"] / 1024, percent(m["accuracy"]), m["difference_pts"], percent(m["agreement"]),
                      m["mean_kl"], m["mean_cosine"], m["median_ms"]] for m in models])
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
