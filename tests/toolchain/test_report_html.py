"""report.html of each kind of build (plain, pruned + int8 + QAT, latency budget) in headless Chromium: every
section there, "not run" where the build did not do it, percentages as percentages, images that load, a page that
fits a 390 px phone; and `edgeclf runs` over the same real builds. Screenshots for the README come from here."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.render import slug
from edgeclf.toolchain import report as report_module
from tests.browser import CHROMIUM, needs_chromium, rendered, screenshot

PLAIN = {"model.name": "tiny", "model.size": 16, "train.epochs": 2}
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

# kind -> the sections that must say "not run" (every other section must show data)
NOT_RUN = {
    "plain": {"Model choice", "Pruning", "Quantization", "Calibration", "Quality gate",
              "Predictions that differ from float32"},
    "pruned_int8_qat": {"Model choice"},
    "latency_budget": {"Pruning"},
}
PERCENT_HEADERS = re.compile(r"top-1|top-5|agreement|precision|recall|sparsity|conforming")
PERCENT = re.compile(r"^(-?\d+\.\d\d%|-|n/a)$")


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    from edgeclf.toolchain.build import build
    from edgeclf.toolchain.config import BuildConfig

    return build(BuildConfig().override({**PLAIN, "export.out": str(tmp_path_factory.mktemp("plain"))})).run_dir


@pytest.fixture(scope="module")
def runs_of_each_kind(plain_run, tiny_run, choice_run) -> dict[str, Path]:
    run, _, result = choice_run
    assert result.exit_code == 0, result.output
    return {"plain": plain_run, "pruned_int8_qat": tiny_run, "latency_budget": run.resolve()}


class _Sections(HTMLParser):
    """Each <section id>'s text, its tables (header + rows of cell text) and its element classes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: dict | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.current = self.sections[attrs["id"]] = {"text": [], "tables": [], "classes": []}
        if self.current is None:
            return
        self.current["classes"] += (attrs.get("class") or "").split()
        if tag == "table":
            self.current["tables"].append([])
        elif tag == "tr":
            self.current["tables"][-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.current is not None and self.cell is not None:
            self.current["tables"][-1][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "section":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current["text"].append(data)
            if self.cell is not None:
                self.cell.append(data)


def _sections(dom: str) -> dict[str, dict]:
    parser = _Sections()
    parser.feed(dom)
    return parser.sections


def _check_page(page: Path, kind: str) -> dict[str, dict]:
    """The checks every report.html must pass, in Chromium when it is installed, else on the file's HTML."""
    dom = page.read_text(encoding="utf-8")
    if CHROMIUM is not None:
        shown = rendered(page, width=390)
        assert shown["loaded"] == shown["img_tags"] > 0, (kind, shown["loaded"], shown["img_tags"])
        assert shown["overflow_x"] <= 0, f"{kind}: the page is {shown['overflow_x']} px wider than a 390 px phone"
        dom = shown["dom"]
    sections = _sections(dom)
    for heading in report_module.HTML_SECTIONS:
        section = sections.get(slug(heading))
        assert section is not None, f"{kind}: section {heading!r} is missing"
        said_not_run = "not-run" in section["classes"]
        assert said_not_run == (heading in NOT_RUN[kind]), f"{kind}: {heading!r} not run: {said_not_run}"
        for table in section["tables"]:
            header, rows = table[0], table[1:]
            for column, name in enumerate(header):
                if PERCENT_HEADERS.search(name):
                    cells = [row[column] for row in rows if column < len(row)]
                    assert all(PERCENT.match(c) for c in cells), f"{kind}, {heading}, {name}: {cells}"
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # self-contained
    return sections


@pytest.mark.parametrize("kind", list(NOT_RUN))
def test_report_html_of_each_kind_of_build(kind, runs_of_each_kind):
    run = runs_of_each_kind[kind]
    report = json.loads((run / "report.json").read_text())
    page = run / "report.html"
    text = page.read_text()
    sections = _check_page(page, kind)
    data = "".join(sections[slug("Data")]["text"])
    assert f"{report['dataset']['train']} train / {report['dataset']['val']} val" in data
    assert "Skipped files (0)" in data and "images per class" in text
    samples = len(re.findall(r'<div class="samples">', text))
    assert samples == len(report["dataset"]["classes"])  # a few thumbnails of every class
    training = sections[slug("Training")]
    assert "training: loss" in text and "training: accuracy" in text and "polyline" in text
    env = json.loads((run / "env.json").read_text())
    environment = "".join(sections[slug("Environment")]["text"])
    assert env["versions"]["tensorflow"] in environment and report["latency"]["cpu"]["feature_list"] in environment
    stages = "".join(sections[slug("Stages")]["text"])
    assert all(stage in stages for stage in report["stages"])
    for variant, artifact in report["artifacts"].items():  # top-1 as report.md writes it: 98.61%, not 0.9861
        assert f"{100 * artifact['accuracy']:.2f}%" in "".join(sections[slug("Summary")]["text"])
    if kind == "pruned_int8_qat":
        assert "pruning: accuracy" in text and "QAT: accuracy" in text
        assert f"{100 * report['sparsity']['overall']:.2f}%" in "".join(sections[slug("Pruning")]["text"])
        worst = report["quantization_error"]["worst_layers"][0]
        assert html.escape(worst["tensor"]) in text
        assert f"seed {report['calibration']['seed']}" in "".join(sections[slug("Calibration")]["text"])
    if kind == "latency_budget":
        choice = "".join(sections[slug("Model choice")]["text"])
        assert report["model_choice"]["chosen"] in choice and 'class="budget"' in text
        assert text.count('<circle class="chosen"') == 1  # the chosen candidate marked on the chart
        assert f"budget {report['model_choice']['budget_ms']:g} ms" in text
    assert training is not None


def test_fine_tuning_start_is_marked_on_the_curves(tiny_report):
    history = dict(tiny_report["history"]["train"])
    assert 'class="mark"' not in report_module._curves(history, "training")
    history["fine_tune_start"] = [float(len(history["loss"]) // 2)]
    drawn = report_module._curves(history, "training")
    assert drawn.count('class="mark"') == 2 and "fine-tuning starts" in drawn  # on the loss and accuracy charts


def test_skipped_files_are_listed_with_their_reasons(tiny_report):
    report = json.loads(json.dumps(tiny_report))
    report["dataset"]["skipped"] = [{"path": "/photos/cat/broken.jpg", "reason": "truncated JPEG"},
                                    {"path": "/photos/dog/notes.jpg", "reason": "not an image (text)"}]
    page = report_module.html_page(report, {}, {})
    data = "".join(_sections(page)[slug("Data")]["text"])
    assert "Skipped files (2)" in data and "/photos/cat/broken.jpg" in data and "truncated JPEG" in data


def _runs_folder(tmp_path: Path, runs: dict[str, Path]) -> Path:
    """The three builds' reports side by side in one runs folder, as if built into the same --out."""
    folder = tmp_path / "runs"
    for run in runs.values():
        target = folder / run.name
        target.mkdir(parents=True)
        for name in ("report.json", "config.yaml", "report.html"):
            shutil.copy(run / name, target / name)
    return folder


def test_runs_lists_and_diffs_real_builds(tmp_path, runs_of_each_kind):
    folder = _runs_folder(tmp_path, runs_of_each_kind)
    result = CliRunner().invoke(cli, ["runs", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    plain, pruned = rows[runs_of_each_kind["plain"].name], rows[runs_of_each_kind["pruned_int8_qat"].name]
    assert plain["variants"] == ["float32"] and plain["sparsity"] is None and plain["status"] == "finished"
    assert pruned["variants"][:2] == ["float32", "int8"] and pruned["sparsity"] > 0.4
    result = CliRunner().invoke(cli, ["runs", "diff", str(runs_of_each_kind["plain"]),
                                      str(runs_of_each_kind["pruned_int8_qat"])])
    assert result.exit_code == 0, result.output
    assert "prune.sparsity: 0 -> 0.5  (+0.5)" in result.output and "quantize.int8: False -> True" in result.output
    assert "float32.top1:" in result.output


@needs_chromium
def test_screenshots_for_the_readme(tmp_path, runs_of_each_kind):
    """Phone-sized screenshots of report.html and runs.html; written into docs/img/ when missing or when
    EDGECLF_SCREENSHOTS=1 (the committed ones stay put otherwise, so a test run does not dirty the tree)."""
    import cv2

    folder = _runs_folder(tmp_path, runs_of_each_kind)
    runs_page = tmp_path / "runs.html"
    assert CliRunner().invoke(cli, ["runs", str(folder), "--html", str(runs_page)]).exit_code == 0
    shown = rendered(runs_page, width=390)
    assert shown["charts"] == 1 and shown["overflow_x"] <= 0
    for name, page in (("report.png", runs_of_each_kind["pruned_int8_qat"] / "report.html"), ("runs.png", runs_page)):
        refresh = os.environ.get("EDGECLF_SCREENSHOTS") == "1" or not (DOCS_IMG / name).is_file()
        out = DOCS_IMG / name if refresh else tmp_path / name
        screenshot(page, out)
        image = cv2.imread(str(out))
        assert image.shape[:2] == (1100, 390) and image.std() > 10  # a page, not a blank window
        assert out.stat().st_size < 80_000, f"{out}: {out.stat().st_size} bytes; keep README images small"
