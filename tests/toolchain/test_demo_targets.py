"""The quick-start promise: the default cnn on digits, pruned to 50% and quantized to int8."""
from __future__ import annotations

import json

import pytest

from edgeclf.toolchain.build import build
from edgeclf.toolchain.config import BuildConfig


@pytest.mark.slow
def test_default_build_meets_the_demo_targets(tmp_path):
    config = BuildConfig().override({"prune.sparsity": 0.5, "quantize.int8": True, "export.out": str(tmp_path)})
    report = json.loads((build(config).run_dir / "report.json").read_text())
    float32, int8 = report["artifacts"]["float32"]["accuracy"], report["artifacts"]["int8"]["accuracy"]
    assert float32 >= 0.95
    assert float32 - int8 <= 0.01
    assert abs(report["sparsity"]["overall"] - 0.5) <= 0.02
