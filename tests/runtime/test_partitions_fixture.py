"""XNNPACK's partitions, read by edgeclf.runtime.delegation, on committed int8 models (no TensorFlow).

Runs wherever tests/runtime runs, the arm64 root of `make test-arm` included: the int8 MobileNetV3-Small
edgeclf exports is one XNNPACK partition there too. The fixtures come from
tests/fixtures/make_xnnpack_fixtures.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeclf.runtime import delegation
from edgeclf.runtime._backend import get_backend

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xnnpack"
MOBILENET_V3 = FIXTURES / "mobilenet_v3_small_int8.tflite"
HARD_SWISH = FIXTURES / "hard_swish_int8.tflite"

litert_only = pytest.mark.skipif(
    get_backend().name != "ai_edge_litert",
    reason=f"XNNPACK's int8 op coverage is checked with LiteRT (ai_edge_litert); this backend is {get_backend().name} "
           f"{get_backend().version}, whose XNNPACK build takes other ops")


@litert_only
def test_int8_mobilenet_v3_runs_in_one_xnnpack_partition():
    result = delegation.read(MOBILENET_V3.read_bytes())
    assert result.partitions == 1, result.summary()
    assert result.one_partition and result.edge_only, result.summary()
    # The uint8 input's conversion to int8 runs inside XNNPACK too (as DEQUANTIZE + QUANTIZE, which it fuses):
    # only the softmax and the int8 -> uint8 output quantize are left, at the output.
    assert result.outside == {"QUANTIZE": 1, "SOFTMAX": 1}, result.summary()
    assert result.delegated.get("DEQUANTIZE") == 1, result.summary()
    assert "HARD_SWISH" not in result.delegated and result.delegated["MUL"] > 0  # hard-swish as MUL, ADD, MUL
    assert result.ops == sum(result.delegated.values()) + result.outside_count


@litert_only
def test_int8_hard_swish_splits_the_graph_and_is_named():
    result = delegation.read(HARD_SWISH.read_bytes())
    assert result.partitions == 2, result.summary()
    assert result.outside.get("HARD_SWISH") == 1
    assert not result.one_partition and not result.edge_only
    assert "HARD_SWISH x1" in result.summary() and "between partitions" in result.summary()


@litert_only
def test_inspect_shows_the_partitions():
    from edgeclf.cli import cli

    text = CliRunner().invoke(cli, ["inspect", str(HARD_SWISH)])
    assert text.exit_code == 0, text.output
    assert "XNNPACK 2 partitions" in text.output and "HARD_SWISH x1" in text.output
    shown = CliRunner().invoke(cli, ["inspect", str(MOBILENET_V3), "--json"])
    xnnpack = json.loads(shown.output)["xnnpack"]
    assert xnnpack["xnnpack_partitions"] == 1 and xnnpack["outside_only_at_edges"]
