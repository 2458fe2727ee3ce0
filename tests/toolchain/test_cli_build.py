"""`edgeclf build` through the CLI: a real run, config file + flag precedence, bad options."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from click.testing import CliRunner

from edgeclf.cli import cli


def test_build_cli_real_run_with_config_and_flag_override(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("model:\n  name: tiny\n  size: 16\ntrain:\n  epochs: 5\nquantize:\n  int8: true\n")
    out = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["build", "--config", str(config), "--epochs", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary["artifacts"]) == {"float32", "int8"}
    saved = (out / "latest" / "config.yaml").read_text()
    assert "epochs: 1" in saved and "name: tiny" in saved and "size: 16" in saved  # flag beat the file


def test_build_cli_bad_options_exit_2_with_the_fix(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["build", "--prune", "1.2", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "--prune must be in [0, 0.95); received 1.2. Use e.g. --prune 0.5." in result.output
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  epoch: 3\n")
    result = runner.invoke(cli, ["build", "--config", str(config)])
    assert result.exit_code == 2 and "unknown key 'train.epoch'. Did you mean 'train.epochs'?" in result.output
    result = runner.invoke(cli, ["build", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "nowhere: no such folder" in result.output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_build_console_has_only_edgeclfs_own_lines(tmp_path):
    """TensorFlow's C++ logs (absl preamble, cudart/cuInit on a CPU machine), the converter's summary,
    LiteRT's INFO line and the tf.lite.Interpreter deprecation warning never reach the user."""
    done = subprocess.run([sys.executable, "-m", "edgeclf", "build", "--model", "tiny", "--size", "16", "--epochs", "1",
                           "--int8", "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "[1/8] data" and "[8/8] report" in lines
    foreign = [line for line in lines if not re.match(r"\[\d/8\] |  ", line)]
    assert foreign == [], foreign
    # our own warnings still show: an empty calibration folder is a real error, reported on stderr
    done = subprocess.run([sys.executable, "-m", "edgeclf", "build", "--model", "tiny", "--size", "16", "--epochs", "1",
                           "--int8", "--calib-data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "nowhere" in done.stderr.splitlines()[-1], done.stderr


def test_every_config_setting_is_a_build_option_with_its_flag_default_and_choices():
    from edgeclf.toolchain.config import settings

    options = {param.name: param for param in cli.commands["build"].params}
    declared = settings()
    assert len(declared) >= 39  # the 39 flags build had when its options were written by hand
    for setting in declared:
        option = options[setting.param]
        assert setting.flag in option.opts and option.default == setting.field.default
        if setting.field.metadata["choices"]:
            assert list(option.type.choices) == list(setting.field.metadata["choices"])
    text = CliRunner().invoke(cli, ["build", "--help"]).output
    assert "--io [uint8|int8|float32]" in text and "--flip / --no-flip" in text and "mobilenet_v2 96" in text


def test_a_choice_flag_is_refused_with_the_valid_values(tmp_path):
    result = CliRunner().invoke(cli, ["build", "--io", "int4", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "'int4' is not one of 'uint8', 'int8', 'float32'" in result.output
    assert not (tmp_path / "runs").exists()
