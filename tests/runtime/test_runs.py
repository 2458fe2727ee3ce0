"""`edgeclf runs`: the runs of a folder as one table (text, JSON, HTML), sorted and filtered, and `runs diff`.

The run folders here are laid out as a build leaves them (report.json, config.yaml, report.html; a failed gate's
`-failed` name; a build's `.tmp-<id>/` with its owner file); tests/toolchain/test_report_html.py lists real builds.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from edgeclf.cli import cli
from tests.browser import needs_chromium, rendered


def _run(runs: Path, name: str, created: str, top1: dict[str, float], *, passed: bool = True, sparsity: float = 0.0,
         model: str = "cnn", size: int = 32, epochs: int = 10) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    config = {"data": {"source": "photos"}, "model": {"name": model, "size": size, "alpha": 0.35},
              "train": {"epochs": epochs, "batch_size": 32}, "prune": {"sparsity": sparsity}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    artifacts = {variant: {"path": f"model_{variant}.tflite", "accuracy": accuracy, "top5": 1.0,
                           "agreement_with_float32": 1.0 if variant == "float32" else 0.99,
                           "bytes": 40000 if variant == "float32" else 12000, "gzip_bytes": 9000,
                           "latency_ms": {"median": 0.5 if variant == "float32" else 0.4, "p90": 0.6}}
                 for variant, accuracy in top1.items()}
    layers = {"conv2": {"pruned": True, "sparsity": sparsity, "weights": 100}}  # prunable: marked in every build
    report = {"schema": 1, "created": created, "model": {"name": model, "size": size, "parameters": 1000},
              "dataset": {"root": "/data/photos", "train": 80, "val": 20, "classes": ["cat", "dog"], "skipped": []},
              "artifacts": artifacts, "sparsity": {"overall": sparsity, "layers": layers},
              "gate": {"passed": passed, "drop_points": {}, "failed": [] if passed else ["int8 fell 3 points"]},
              "stages": {"data": 1.0, "train": 5.0}}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (folder / "report.html").write_text("<!doctype html><title>report</title>", encoding="utf-8")
    return folder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _runs_folder(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    _run(runs, "20260101-100000-cnn-32", "2026-01-01T10:00:00+00:00", {"float32": 0.90, "int8": 0.89})
    _run(runs, "20260102-100000-mobilenet_v2-96", "2026-01-02T10:00:00+00:00", {"float32": 0.97, "int8": 0.96},
         sparsity=0.5, model="mobilenet_v2", size=96, epochs=20)
    _run(runs, "20260103-100000-cnn-32-failed", "2026-01-03T10:00:00+00:00", {"float32": 0.91, "int8": 0.80},
         passed=False)
    (runs / "latest").symlink_to("20260102-100000-mobilenet_v2-96")
    (runs / ".resume").mkdir()
    killed = runs / ".tmp-0123456789ab"
    killed.mkdir()
    (killed / ".owner").write_text(f"{_dead_pid()} {socket.gethostname()}", encoding="utf-8")
    (killed / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "cnn", "size": 48}}), encoding="utf-8")
    running = runs / ".tmp-ba9876543210"
    running.mkdir()
    (running / ".owner").write_text(f"{os.getpid()} {socket.gethostname()}", encoding="utf-8")
    damaged = runs / "20251231-100000-cnn-32"
    damaged.mkdir()
    (damaged / "report.json").write_text("{ truncated", encoding="utf-8")
    os.utime(killed, (1.9e9, 1.9e9))  # "started" after every finished run: it sorts first
    os.utime(running, (1.9e9 + 1, 1.9e9 + 1))
    return runs


def _json(args: list[str]) -> list[dict]:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_runs_lists_every_run_newest_first_with_its_status(tmp_path):
    runs = _runs_folder(tmp_path)
    rows = _json(["runs", str(runs), "--json"])
    assert [r["name"] for r in rows] == [".tmp-ba9876543210", ".tmp-0123456789ab", "20260103-100000-cnn-32-failed",
                                         "20260102-100000-mobilenet_v2-96", "20260101-100000-cnn-32",
                                         "20251231-100000-cnn-32"]
    assert [r["status"] for r in rows] == ["running", "interrupted", "failed", "finished", "finished", "unreadable"]
    mobilenet = rows[3]
    assert mobilenet["model"] == "mobilenet_v2 0.35@96" and mobilenet["data"] == "photos"
    assert mobilenet["variants"] == ["float32", "int8"] and mobilenet["top1"] == {"float32": 0.97, "int8": 0.96}
    assert mobilenet["sparsity"] == 0.5 and rows[4]["sparsity"] is None  # not pruned: no sparsity, not 0%
    assert rows[1]["model"] == "cnn@48"  # an interrupted build says what it was building


def test_runs_text_table_shows_percentages_and_every_column(tmp_path):
    runs = _runs_folder(tmp_path)
    result = CliRunner().invoke(cli, ["runs", str(runs)])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    for column in ("time", "data", "model/size", "variants", "top-1", "size", "latency", "sparsity", "status", "run"):
        assert column in header
    mobilenet = next(line for line in lines if "mobilenet_v2-96" in line)
    assert "97.00% 96.00%" in mobilenet and "50.00%" in mobilenet and "finished" in mobilenet
    assert "39.1KiB 11.7KiB" in mobilenet and "0.500ms 0.400ms" in mobilenet


def test_runs_sort_and_filter(tmp_path):
    runs = _runs_folder(tmp_path)
    best = _json(["runs", str(runs), "--sort", "top1", "--json"])
    assert [r["name"] for r in best][:3] == ["20260102-100000-mobilenet_v2-96", "20260103-100000-cnn-32-failed",
                                             "20260101-100000-cnn-32"]
    smallest_fastest = _json(["runs", str(runs), "--sort", "latency", "--json"])
    assert smallest_fastest[0]["latency_ms"]["int8"] == 0.4
    failed = _json(["runs", str(runs), "--filter", "status=failed", "--json"])
    assert [r["name"] for r in failed] == ["20260103-100000-cnn-32-failed"]
    both = _json(["runs", str(runs), "--filter", "model=CNN", "--filter", "status=finished", "--json"])
    assert [r["name"] for r in both] == ["20260101-100000-cnn-32"]


def test_runs_bad_input_is_one_line(tmp_path):
    runs = _runs_folder(tmp_path)
    for args, message in ((["runs", str(tmp_path / "none")], "no such folder of runs"),
                          (["runs", str(runs), "--sort", "speed"], "--sort: unknown column 'speed'; the columns are"),
                          (["runs", str(runs), "--filter", "top1"], "--filter must be COLUMN=VALUE; received 'top1'"),
                          (["runs", str(runs), "--filter", "speed=1"], "--filter: unknown column 'speed'"),
                          (["runs", "diff", "nope", "alsonope", "--dir", str(runs)], "nope: not a finished run")):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1, \
            result.output


def test_runs_html_links_each_run_to_its_report(tmp_path):
    runs = _runs_folder(tmp_path)
    page = tmp_path / "pages" / "runs.html"
    page.parent.mkdir()
    result = CliRunner().invoke(cli, ["runs", str(runs), "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    links = [part.split('"')[0] for part in text.split('<a href="')[1:] if not part.startswith("#")]
    assert len(links) == 3 and all((page.parent / link).resolve().is_file() for link in links)
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # one self-contained file
    assert "97.00% 96.00%" in text and 'class="chosen"' in text  # the best deployed top-1 is marked


def test_runs_diff_shows_the_settings_and_figures_that_differ(tmp_path):
    runs = _runs_folder(tmp_path)
    result = CliRunner().invoke(cli, ["runs", "diff", "20260101-100000-cnn-32", "20260102-100000-mobilenet_v2-96",
                                      "--dir", str(runs)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "model.name: cnn -> mobilenet_v2" in out and "train.epochs: 10 -> 20  (+10)" in out
    assert "int8.top1: 89.00% -> 96.00%  (+7.00 pts)" in out and "sparsity.overall: 0.00% -> 50.00%" in out
    assert "data.source" not in out  # the same in both
    same = _json(["runs", "diff", str(runs / "20260101-100000-cnn-32"), str(runs / "latest"), "--json"])
    assert {row["key"] for row in same["settings"]} == {"model.name", "model.size", "train.epochs", "prune.sparsity"}


def test_runs_help_and_diff_help():
    for args in (["runs", "--help"], ["runs", "list", "--help"], ["runs", "diff", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output


@needs_chromium
def test_runs_page_fits_a_phone_in_chromium(tmp_path):
    runs = _runs_folder(tmp_path)
    page = tmp_path / "runs.html"
    assert CliRunner().invoke(cli, ["runs", str(runs), "--html", str(page)]).exit_code == 0
    shown = rendered(page, width=390)
    assert shown["charts"] == 1 and shown["overflow_x"] <= 0
