"""The same models classify the same photos on ARM as on x86.

`make test-arm` writes the x86 scores (tests/arm/reference.py) and runs this test in emulated
Raspberry Pi OS roots (aarch64 and armv7). float32 must agree to 1e-4 with the same top-1; int8 may
differ by a few output steps, because XNNPACK's int8 kernels round differently per instruction set,
so its bound is looser and its top-1 must agree wherever x86's winner leads by more than that bound.
The largest differences are written to agreement.json beside the reference and printed by make test-arm.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest

from edgeclf.runtime.model import Model
from edgeclf.runtime.preprocess import load_image

REFERENCE = os.environ.get("EDGECLF_ARM_REFERENCE")
FLOAT_TOLERANCE, INT8_TOLERANCE = 1e-4, 0.05

pytestmark = pytest.mark.skipif(not REFERENCE, reason="cross-architecture agreement runs under make test-arm, "
                                "which sets EDGECLF_ARM_REFERENCE to the x86 scores")


def _differences(reference: dict, name: str, tolerance: float) -> dict:
    root = Path(REFERENCE)
    model = Model(root / name, num_threads=1)
    expected = np.array(reference["scores"][name])
    got = np.array([model.predict(load_image(root / "photos" / photo))[0] for photo in reference["photos"]])
    ordered = np.sort(expected, axis=1)
    decided = ordered[:, -1] - ordered[:, -2] > tolerance  # x86's winner leads by more than the bound
    return {"max_abs_diff": float(np.abs(got - expected).max()),
            "top1_compared": int(decided.sum()),
            "top1_mismatches": int((got.argmax(1) != expected.argmax(1))[decided].sum()),
            "top1_mismatches_all": int((got.argmax(1) != expected.argmax(1)).sum())}


def test_outputs_match_x86():
    reference = json.loads((Path(REFERENCE) / "reference.json").read_text())
    figures = {}
    for name in sorted(reference["scores"]):
        tolerance = INT8_TOLERANCE if "int8" in name else FLOAT_TOLERANCE
        figures[name] = {**_differences(reference, name, tolerance), "bound": tolerance}
    summary = {"machine": platform.machine(), "reference_machine": reference["machine"],
               "photos": len(reference["photos"]), "models": figures}
    (Path(REFERENCE) / "agreement.json").write_text(json.dumps(summary, indent=1))
    for name, row in figures.items():
        assert row["max_abs_diff"] <= row["bound"], f"{name}: {row}"
        assert row["top1_mismatches"] == 0, f"{name}: {row}"
        if "float32" in name:
            assert row["top1_mismatches_all"] == 0, f"{name}: {row}"
    assert min(row["top1_compared"] for row in figures.values()) >= len(reference["photos"]) // 2, figures
