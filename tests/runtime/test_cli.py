"""Runtime CLI commands: --help, one real run each, bad input, and no TensorFlow import."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli

COMMANDS = ["build", "candidates", "data", "classify", "inspect", "eval", "compare", "bench", "metadata", "camera", "doctor",
            "runs", "service", "collect"]


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(runner, command, flag):
    result = runner.invoke(cli, [command, flag])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {command}" in result.output or f"Usage: edgeclf {command}" in result.output


def test_every_command_has_a_help_test():
    assert sorted(COMMANDS) == sorted(cli.commands)


def test_build_help_shows_defaults(runner):
    output = " ".join(runner.invoke(cli, ["build", "-h"]).output.split())
    assert "[default: digits]" in output and "[default: cnn]" in output and "[default: 300]" in output


def test_classify(runner, tiny_int8, digits_val):
    images = [str(p) for p in sorted((digits_val / "3").iterdir())]
    result = runner.invoke(cli, ["classify", str(tiny_int8), *images, "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["image"] for r in rows] == images
    assert all(len(r["top_k"]) == 2 and r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in rows)
    text = runner.invoke(cli, ["classify", str(tiny_int8), images[0]])
    assert text.exit_code == 0 and images[0] in text.output


def test_inspect(runner, tiny_int8):
    result = runner.invoke(cli, ["inspect", str(tiny_int8), "--json"])
    info = json.loads(result.output)
    assert info["input"]["dtype"] == "uint8" and info["input"]["scale"] == 1.0 and info["input"]["zero_point"] == 0
    assert info["float_ops"] == 0 and info["ops"]["CONV_2D"] == 2
    text = runner.invoke(cli, ["inspect", str(tiny_int8)]).output
    assert "uint8 [1, 16, 16, 3], scale 1, zero point 0" in text


def test_eval(runner, tiny_float32, digits_val):
    result = runner.invoke(cli, ["eval", str(tiny_float32), "--data", str(digits_val), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["images"] == 30 and 0 <= data["accuracy"] <= 1 and set(data["per_class"]) <= set("0123456789")
    assert "top-1" in runner.invoke(cli, ["eval", str(tiny_float32), "--data", str(digits_val)]).output


def test_compare(runner, tiny_float32, tiny_int8, digits_val):
    result = runner.invoke(cli, ["compare", str(tiny_float32), str(tiny_int8), "--data", str(digits_val), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["models"]
    assert rows[0]["agreement"] == 1.0 and rows[0]["difference_pts"] == 0.0
    assert rows[1]["difference_pts"] == pytest.approx(100 * (rows[1]["accuracy"] - rows[0]["accuracy"]))
    assert 0.8 <= rows[1]["agreement"] <= 1.0


def test_bench(runner, tiny_float32, tiny_int8):
    result = runner.invoke(cli, ["bench", str(tiny_float32), str(tiny_int8), "--threads", "1,2",
                                 "--runs", "10", "--min-time", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["results"]
    assert [(r["threads"]) for r in rows] == [1, 2, 1, 2]
    assert all(r["median_ms"] > 0 and r["runs"] >= 10 for r in rows)
    assert [r["ratio_to_first"] for r in rows[:2]] == [1.0, 1.0]
    assert rows[2]["ratio_to_first"] == pytest.approx(rows[2]["median_ms"] / rows[0]["median_ms"])


@pytest.mark.parametrize("args, message", [
    (["bench", "MODEL", "--threads", "0"], "--threads must be a comma-separated list of integers >= 1; received '0'"),
    (["bench", "MODEL", "--runs", "0"], "--runs must be >= 1; received 0"),
    (["classify", "MODEL", "IMAGE", "-k", "0"], "--top-k must be >= 1; received 0"),
    (["compare", "MODEL", "--data", "x"], "compare needs at least two models; received 1"),
    (["inspect", "missing.tflite"], "missing.tflite: no such model file"),
    (["classify", "MODEL", "missing.png"], "missing.png: cannot read"),
    (["eval", "MODEL", "--data", "no/such/dir"], "no/such/dir: no such folder"),
])
def test_bad_input_is_one_line_with_exit_2(runner, tiny_int8, args, message):
    args = [str(tiny_int8) if a == "MODEL" else a for a in args]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_text_file_as_model(runner, tmp_path):
    fake = tmp_path / "notes.tflite"
    fake.write_text("just text")
    for command in (["inspect", str(fake)], ["bench", str(fake)], ["classify", str(fake), str(fake)]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 2 and "not a TFLite model" in result.output


def test_runtime_and_bench_help_never_import_tensorflow():
    code = ("import sys\n"
            "import edgeclf.runtime\n"
            "from click.testing import CliRunner\n"
            "from edgeclf.cli import cli\n"
            "assert CliRunner().invoke(cli, ['bench', '--help']).exit_code == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')\n"
            "             or m.startswith('edgeclf.toolchain')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # nor any toolchain module: build's options are made only when build runs


def test_eval_and_compare_on_a_builtin_dataset_import_no_toolchain(tiny_int8, tmp_path):
    pytest.importorskip("sklearn")  # digits is written on first use from scikit-learn's copy
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from edgeclf.cli import cli\n"
            f"model = {str(tiny_int8)!r}\n"
            "for args in (['eval', model, '--data', 'digits'], ['compare', model, model, '--data', 'digits']):\n"
            "    result = CliRunner().invoke(cli, args)\n"
            "    assert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')\n"
            "             or m.startswith(('edgeclf.toolchain', 'edgeclf.calibration'))))\n")
    env = {**os.environ, "EDGECLF_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "cache" / "datasets" / "digits-v1" / "val").is_dir()


def test_a_keras_builtin_the_toolchain_never_wrote_says_how_to_get_it(runner, tiny_int8, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLF_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(cli, ["eval", str(tiny_int8), "--data", "mnist"])
    assert result.exit_code == 2 and "edgeclf data mnist" in result.output
    assert str(tmp_path / "cache" / "datasets" / "mnist") in result.output


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed here; this runs in the runtime-only venv (make test-runtime)")
def test_build_without_tensorflow_names_the_pip_command(runner, tmp_path):
    result = runner.invoke(cli, ["build", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert 'pip install "edgeclf[train]"' in result.output
    assert not (tmp_path / "runs").exists()
