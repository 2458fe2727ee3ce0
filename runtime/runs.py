"""`edgeclf runs`: every build under a runs folder side by side, and what differs between two of them.

Reads only what a build leaves on disk (report.json, config.yaml, the .tmp-* folder of a build in progress
or killed), so it runs with the runtime alone, on any machine the folder was copied to.
"""
from __future__ import annotations

import html
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from edgeclf.runtime.errors import UserError

# column -> (what it shows, sort key on a row: best first). Sorting puts the best first: newest, most accurate,
# smallest, fastest, sparsest; text columns alphabetically.
COLUMNS = ("time", "data", "model", "variants", "top1", "size", "latency", "sparsity", "status", "name")
STATUSES = {"finished": "built and passed its gate; runs/latest may point here",
            "failed": "built in full but failed its quality gate (--max-drop); kept as <name>-failed",
            "running": "a build writing into .tmp-<id>/ right now",
            "interrupted": "a build killed before it finished; the next build removes its .tmp-<id>/",
            "unreadable": "its report.json could not be read"}
OWNER = ".owner"  # written by toolchain/runfolder.py into a .tmp-* folder: "<pid> <host>"


class RunsError(UserError):
    """A runs folder, run or option that cannot be used; the message says why and what to do."""


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _best_variant_accuracy(row: dict) -> float:
    return max((v for v in row["top1"].values() if v is not None), default=-1.0)


def _first(values: dict) -> float | None:
    """The deployed artifact's figure: int8 when there is one, else the first variant's."""
    if not values:
        return None
    return values.get("int8", next(iter(values.values())))


SORT_KEYS: dict[str, Callable[[dict], Any]] = {
    "time": lambda r: r["time"], "data": lambda r: r["data"], "model": lambda r: r["model"],
    "variants": lambda r: ",".join(r["variants"]), "top1": _best_variant_accuracy,
    "size": lambda r: -(_first(r["bytes"]) or float("inf")), "latency": lambda r: -(_first(r["latency_ms"]) or float("inf")),
    "sparsity": lambda r: r["sparsity"] if r["sparsity"] is not None else -1.0, "status": lambda r: r["status"],
    "name": lambda r: r["name"],
}
DESCENDING = {"time", "top1", "size", "latency", "sparsity"}  # size/latency keys are negated: smallest first


def _model(report: dict, config: dict) -> str:
    name, size = report["model"]["name"], report["model"]["size"]
    alpha = (config.get("model") or {}).get("alpha")
    widths = name.startswith(("mobilenet_v2", "mobilenet_v3"))
    return f"{Path(name).stem}{f' {alpha:g}' if widths and alpha is not None else ''}@{size}"


def _data(report: dict, config: dict) -> str:
    source = (config.get("data") or {}).get("source")
    return str(source) if source else Path(report["dataset"]["root"]).name


def _finished_row(folder: Path) -> dict:
    row = {"name": folder.name, "path": str(folder), "time": "", "data": "", "model": "", "variants": [],
           "top1": {}, "bytes": {}, "latency_ms": {}, "sparsity": None, "status": "unreadable", "report": None}
    try:
        report = _load_json(folder / "report.json")
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) if (folder / "config.yaml").is_file() else {}
        artifacts = report["artifacts"]
        sparsity = report.get("sparsity") or {}
        # layers are marked prunable in every build; only a build given --prune (or its dense reference) pruned
        target = ((config or report.get("config") or {}).get("prune") or {}).get("sparsity") or 0
        pruned = bool(report.get("dense_reference")) or target > 0
        gate = report.get("gate") or {}
        failed = folder.name.endswith("-failed") or gate.get("passed") is False
        row.update({
            "time": report.get("created", ""), "data": _data(report, config or report.get("config") or {}),
            "model": _model(report, config or report.get("config") or {}), "variants": list(artifacts),
            "top1": {v: a.get("accuracy") for v, a in artifacts.items()},
            "bytes": {v: a.get("bytes") for v, a in artifacts.items()},
            "latency_ms": {v: (a.get("latency_ms") or {}).get("median") for v, a in artifacts.items()},
            "sparsity": sparsity.get("overall") if pruned else None,
            "status": "failed" if failed else "finished",
            "report": str(folder / "report.html") if (folder / "report.html").is_file() else None,
        })
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        pass  # listed as unreadable: one damaged folder must not hide the others
    return row


def _owner_alive(folder: Path) -> bool:
    """Whether the build writing a .tmp-* folder still runs (same rule as toolchain/runfolder.py)."""
    try:
        pid, host = (folder / OWNER).read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return datetime.now().timestamp() - folder.stat().st_mtime < 86400
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _temporary_row(folder: Path) -> dict:
    started = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc).astimezone().isoformat(timespec="seconds")
    config: dict = {}
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    model = config.get("model") or {}
    return {"name": folder.name, "path": str(folder), "time": started, "data": str((config.get("data") or {}).get("source", "")),
            "model": f"{model.get('name', '')}@{model.get('size', '')}" if model else "", "variants": [], "top1": {},
            "bytes": {}, "latency_ms": {}, "sparsity": None,
            "status": "running" if _owner_alive(folder) else "interrupted", "report": None}


def list_runs(folder: Path) -> list[dict]:
    """One row per run under `folder`, newest first.

    Raises:
        RunsError: the folder does not exist or is not a folder.
    """
    if not folder.is_dir():
        raise RunsError(f"{folder}: no such folder of runs. Build one first (edgeclf build writes runs/) or pass the "
                        "folder your builds wrote with --out, e.g. edgeclf runs my_runs/.")
    rows = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue  # runs/latest and stray files
        if entry.name.startswith(".tmp-"):
            rows.append(_temporary_row(entry))
        elif not entry.name.startswith(".") and (entry / "report.json").exists():
            rows.append(_finished_row(entry))
    return sort_rows(rows, "time")


def sort_rows(rows: list[dict], column: str) -> list[dict]:
    """Rows by `column`, best first (see SORT_KEYS); rows without the figure go last.

    Raises:
        RunsError: an unknown column.
    """
    key = SORT_KEYS.get(_column(column, "--sort"))
    return sorted(rows, key=key, reverse=column in DESCENDING)


def _column(name: str, option: str) -> str:
    if name not in COLUMNS:
        raise RunsError(f"{option}: unknown column {name!r}; the columns are {', '.join(COLUMNS)}. "
                        f"Use e.g. {option} {'top1' if option == '--sort' else 'status=failed'}.")
    return name


def filter_rows(rows: list[dict], filters: Sequence[str]) -> list[dict]:
    """Rows whose column's text contains VALUE (case-insensitive), for each COLUMN=VALUE.

    Raises:
        RunsError: a filter without `=` or with an unknown column.
    """
    for spec in filters:
        column, sep, value = spec.partition("=")
        if not sep:
            raise RunsError(f"--filter must be COLUMN=VALUE; received {spec!r}. Use e.g. --filter model=mobilenet "
                            "or --filter status=failed.")
        column = _column(column.strip(), "--filter")
        rows = [r for r in rows if value.strip().lower() in cells(r)[column].lower()]
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _per_variant(row: dict, key: str, fmt: Callable[[float], str]) -> str:
    return " ".join("-" if row[key].get(v) is None else fmt(row[key][v]) for v in row["variants"]) or "-"


def cells(row: dict) -> dict[str, str]:
    """A row's text in each column; per-variant figures in the order of the variants column."""
    return {"time": row["time"].replace("T", " ")[:19], "data": row["data"], "model": row["model"],
            "variants": ",".join(row["variants"]) or "-",
            "top1": _per_variant(row, "top1", lambda v: f"{100 * v:.2f}%"),
            "size": _per_variant(row, "bytes", lambda v: f"{v / 1024:.1f}KiB"),
            "latency": _per_variant(row, "latency_ms", lambda v: f"{v:.3f}ms"),
            "sparsity": _pct(row["sparsity"]), "status": row["status"], "name": row["name"]}


HEADERS = {"time": "time", "data": "data", "model": "model/size", "variants": "variants", "top1": "top-1",
           "size": "size", "latency": "latency (median)", "sparsity": "sparsity", "status": "status", "name": "run"}


def text_table(rows: list[dict]) -> list[str]:
    """The rows as aligned text lines, a header first."""
    table = [[HEADERS[c] for c in COLUMNS]] + [[cells(r)[c] for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]


def html_page(rows: list[dict], page_path: Path, title: str) -> str:
    """runs.html: the table, each run linking to its report.html (relative to the page), and each finished
    run's deployed top-1 against its latency."""
    from edgeclf.runtime import render

    def link(row: dict) -> str:
        name = html.escape(row["name"])
        if not row["report"]:
            return name
        target = os.path.relpath(row["report"], page_path.resolve().parent)
        return f'<a href="{html.escape(Path(target).as_posix())}">{name}</a>'

    head = "".join(f"<th>{html.escape(HEADERS[c])}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{link(r) if c == 'name' else html.escape(cells(r)[c])}</td>"
                                    for c in COLUMNS) + "</tr>" for r in rows)
    table = render.scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>") if rows else \
        "<p>no runs yet.</p>"
    points = [{"x": _first(r["latency_ms"]), "y": _first(r["top1"]), "label": r["name"],
               "kind": "fits" if r["status"] == "finished" else "out"}
              for r in rows if _first(r["latency_ms"]) is not None and _first(r["top1"]) is not None]
    if points:
        best = max(points, key=lambda p: (p["y"], -p["x"]))
        best["kind"] = "chosen"
        chart = render.scatter_svg("top-1 against latency (int8 where built)", points,
                                   "median latency ms (1 thread, where each was built)", "top-1", note=" (best top-1)")
    else:
        chart = render.not_run("no finished run to chart")
    legend = "<ul>" + "".join(f"<li><b>{s}</b>: {html.escape(d)}</li>" for s, d in STATUSES.items()) + "</ul>"
    return render.page(title, [("Runs", f"<p>{len(rows)} run(s); top-1, size and latency per variant in the order of "
                                        "the variants column; each run links to its report.html.</p>" + table),
                               ("Accuracy against latency", chart), ("Status", legend)])


def resolve_run(name: str, folder: Path) -> Path:
    """A run given as a path, or as a name under the runs folder.

    Raises:
        RunsError: neither holds a report.json.
    """
    for candidate in (Path(name), folder / name):
        if (candidate / "report.json").is_file():
            return candidate
    raise RunsError(f"{name}: not a finished run (no report.json there or in {folder / name}). Pass a run folder, "
                    f"or a name from `edgeclf runs {folder}`.")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def figures(report: dict) -> dict[str, Any]:
    """The figures of a run that a diff compares: per-artifact accuracy, agreement, size and latency, sparsity,
    data counts, parameters, the gate and the total stage time."""
    flat: dict[str, Any] = {"model.parameters": report["model"].get("parameters"),
                            "dataset.train": report["dataset"].get("train"), "dataset.val": report["dataset"].get("val"),
                            "dataset.classes": len(report["dataset"].get("classes", [])),
                            "dataset.skipped": len(report["dataset"].get("skipped", []))}
    for variant, a in report["artifacts"].items():
        flat.update({f"{variant}.top1": a.get("accuracy"), f"{variant}.top5": a.get("top5"),
                     f"{variant}.agreement_with_float32": a.get("agreement_with_float32"),
                     f"{variant}.bytes": a.get("bytes"), f"{variant}.gzip_bytes": a.get("gzip_bytes"),
                     f"{variant}.latency_median_ms": (a.get("latency_ms") or {}).get("median")})
    sparsity = report.get("sparsity") or {}
    flat["sparsity.overall"] = sparsity.get("overall")
    flat["gate.passed"] = (report.get("gate") or {}).get("passed")
    flat["stages.total_seconds"] = round(sum((report.get("stages") or {}).values()), 1)
    flat["model_choice.chosen"] = (report.get("model_choice") or {}).get("chosen")
    return flat


def diff(a: Path, b: Path) -> dict:
    """The settings (config.yaml) and figures (report.json) that differ between two runs."""
    def load(run: Path) -> tuple[dict, dict]:
        try:
            report = _load_json(run / "report.json")
            config = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
                      if (run / "config.yaml").is_file() else report.get("config")) or {}
            return _flatten(config), figures(report)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise RunsError(f"{run}: its report.json or config.yaml cannot be read ({exc}). Rebuild the run or "
                            "compare another.") from exc

    (settings_a, figures_a), (settings_b, figures_b) = load(a), load(b)

    def differing(x: dict, y: dict) -> list[dict]:
        rows = []
        for key in list(x) + [k for k in y if k not in x]:
            if x.get(key) != y.get(key):
                row = {"key": key, "a": x.get(key), "b": y.get(key)}
                if isinstance(row["a"], (int, float)) and isinstance(row["b"], (int, float)) \
                        and not isinstance(row["a"], bool) and not isinstance(row["b"], bool):
                    row["change"] = row["b"] - row["a"]
                rows.append(row)
        return rows

    return {"a": str(a), "b": str(b), "settings": differing(settings_a, settings_b),
            "figures": differing(figures_a, figures_b)}


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and key.endswith(("top1", "top5", "agreement_with_float32", "sparsity.overall")):
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _change(key: str, change: float) -> str:
    if key.endswith(("top1", "top5", "agreement_with_float32", "sparsity.overall")):
        return f"{100 * change:+.2f} pts"
    return f"{change:+.4g}"


def diff_lines(result: dict) -> list[str]:
    """A diff as text: settings then figures, each `key: a -> b (change)`."""
    lines = [f"A: {result['a']}", f"B: {result['b']}"]
    for part in ("settings", "figures"):
        rows = result[part]
        lines.append(f"{part} that differ ({len(rows)}):" if rows else f"{part}: the same")
        for row in rows:
            change = f"  ({_change(row['key'], row['change'])})" if "change" in row else ""
            lines.append(f"  {row['key']}: {_value(row['key'], row['a'])} -> {_value(row['key'], row['b'])}{change}")
    return lines
