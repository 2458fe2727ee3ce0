"""One small real build (tiny, digits at 32x32, pruned, int8) shared by many assertions."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = {"model.name": "tiny", "train.epochs": 10, "prune.sparsity": 0.5, "prune.epochs": 4,
        "quantize.int8": True, "quantize.calib_size": 100, "quantize.qat": True, "quantize.qat_epochs": 1}


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Built-in datasets go to a per-session cache, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("EDGECLF_CACHE")
    os.environ["EDGECLF_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("EDGECLF_CACHE", None)
    else:
        os.environ["EDGECLF_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    from edgeclf.toolchain.config import BuildConfig

    return BuildConfig().override({**TINY, "export.out": str(tmp_path_factory.mktemp("runs"))})


@pytest.fixture(scope="session")
def tiny_run(tiny_config) -> Path:
    from edgeclf.toolchain.build import build

    return build(tiny_config).run_dir


@pytest.fixture(scope="session")
def tiny_report(tiny_run) -> dict:
    import json

    return json.loads((tiny_run / "report.json").read_text())


@pytest.fixture(scope="session")
def choice_run(tmp_path_factory) -> tuple[Path, Path, object]:
    """A small --latency-budget build on a crafted device.json (tests/toolchain/test_model_choice.py), shared by the
    model-choice and report.html tests: (runs/latest, device.json, the CLI result)."""
    from click.testing import CliRunner

    from edgeclf.cli import cli
    from tests.toolchain.test_model_choice import _device_json

    folder = tmp_path_factory.mktemp("choice")
    device = _device_json(folder / "device.json")
    result = CliRunner().invoke(cli, ["build", "--data", "digits", "--latency-budget", "5", "--device", str(device),
                                      "--candidate-models", "tiny,cnn", "--candidate-sizes", "16",
                                      "--candidate-sizes", "24", "--finalists", "2", "--epochs", "2",
                                      "--trial-epochs", "1", "--out", str(folder / "runs"), "--json"])
    return folder / "runs" / "latest", device, result


@pytest.fixture()
def offline(monkeypatch):
    """Downloads fail at once, as on a machine without a network, even where one exists."""
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # a port nothing listens on: refused immediately
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
