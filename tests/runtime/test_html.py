"""eval --html and compare --html: self-contained pages whose figures really render in Chromium."""
from __future__ import annotations

from click.testing import CliRunner

from edgeclf.cli import cli
from tests.browser import needs_chromium, rendered


def _pages(tmp_path, tiny_float32, tiny_int8, digits_val):
    runner = CliRunner()
    eval_page, compare_page = tmp_path / "eval.html", tmp_path / "compare.html"
    assert runner.invoke(cli, ["eval", str(tiny_float32), "--data", str(digits_val), "--html", str(eval_page),
                               "--png", str(tmp_path / "confusion.png")]).exit_code == 0
    assert runner.invoke(cli, ["compare", str(tiny_float32), str(tiny_int8), "--data", str(digits_val),
                               "--html", str(compare_page)]).exit_code == 0
    return eval_page, compare_page


def test_pages_are_self_contained(tmp_path, tiny_float32, tiny_int8, digits_val):
    eval_page, compare_page = _pages(tmp_path, tiny_float32, tiny_int8, digits_val)
    for page in (eval_page, compare_page):
        text = page.read_text()
        assert "data:image/png;base64," in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "Per class" in eval_page.read_text() and "Flipped vs the first model" in compare_page.read_text()


@needs_chromium
def test_figures_render_in_chromium(tmp_path, tiny_float32, tiny_int8, digits_val):
    eval_page, compare_page = _pages(tmp_path, tiny_float32, tiny_int8, digits_val)
    shown = rendered(eval_page)
    assert shown["img_tags"] >= 2 and shown["loaded"] == shown["img_tags"]  # confusion + misclassified thumbnails
    shown = rendered(compare_page)
    assert shown["loaded"] == shown["img_tags"] >= 3 and shown["charts"] == 2  # two matrices, flips, two charts
