"""The same models classify the same photos on ARM as on x86.

`make test-arm` writes the x86 scores of each interpreter (tests/arm/reference.py) and runs this test
in emulated Raspberry Pi OS roots (aarch64 with LiteRT, armv7 with tflite-runtime), each against the
x86 scores of its own interpreter. The figures go to agreement.json, which make test-arm prints.

The verdicts do not depend on which x86 CPU wrote the scores. The models are shipped files (the digits
fixture and tests/fixtures/cross_arch's MobileNetV2 0.35@96, made once by `edgeclf build`; it used to be
trained by the machine running the test, and the one an AVX-512 VNNI CPU trained had an int8 that agreed
with its own float32 on only 92.5% of the photos, so the armv7 verdict judged that training, not the
runtime). The photos are PNGs of seeded crops, the same pixels with OpenCV's and libjpeg-turbo's SIMD
paths switched off (reference.py checks them against the ones the fixture was judged on). int8 kernels
accumulate in integers (XNNPACK's gave the x86 and aarch64 int8 MobileNetV2 bit-identical scores), and
float32 kernels differ only in the order of their sums (a few 1e-6 here), far below the fixture's
smallest float32 top-1 margin (0.014, fixture.json). Written on an AVX2-only x86; no VNNI one was at hand.

float32 must agree to 1e-4 with the same top-1 everywhere: the same kernels, rounding differing only in
the order of the sums.

int8 rounds differently per ISA, so each backend has a bound on a score's difference from x86: LiteRT
runs int8 on XNNPACK on both ISAs, within 0.05 (a few steps of the 1/256 output scale; measured: 0 and
1 step). tflite-runtime 2.14 runs TFLite's own int8 kernels, whose requantization rounds differently on
armv7 NEON than on x86: within 0.5 (measured: 0.35 on this fixture, 90 steps; MobileNetV2s trained at
test time gave 0.43 on AVX2 and 0.375 on AVX-512 VNNI). A photo's top-1 counts only where x86's winner
leads by more than the bound (it is decided): on a closer one a difference the bound allows may flip the
winner, which is no fault of the runtime. On decided photos no top-1 may differ, and at least half the
photos must be decided so that the check compares something (110 of 120 at 0.5). Beside that, int8 must
be at least as faithful to float32 on the device as on x86, less 2 points (the build report's
agreement, measured on x86, must not overstate the device's; the device doing better is no failure):
only undecided photos can move it (armv7: 97.5% against x86's 98.3%). The MobileNetV2's int8 agrees with
its float32 on x86 on at least 98% of the photos, as a real build's does (checked, so that a fragile
fixture cannot pass for a faulty runtime, nor a sound runtime fail for a fragile fixture).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest

from edgeclf.runtime._backend import get_backend
from edgeclf.runtime.model import Model
from edgeclf.runtime.preprocess import load_image

REFERENCE = os.environ.get("EDGECLF_ARM_REFERENCE")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cross_arch"
FLOAT_TOLERANCE = 1e-4
INT8_TOLERANCE = {"ai_edge_litert": 0.05, "tflite_runtime": 0.5}  # |int8 score - x86's|, per backend
FIXTURE_FIDELITY = 0.98  # the MobileNetV2's int8 top-1 agreement with its float32 on x86


def _reference() -> dict:
    path = Path(REFERENCE) / f"reference-{get_backend().name}.json"
    if not path.is_file():
        pytest.skip(f"no x86 scores for {get_backend().name} in {REFERENCE} (its venv could not be made on x86)")
    return json.loads(path.read_text())


def _scores(reference: dict, name: str) -> np.ndarray:
    root = Path(REFERENCE)
    model = Model(root / name, num_threads=1)
    return np.array([model.predict(load_image(root / "photos" / photo))[0] for photo in reference["photos"]])


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def _figures(expected: np.ndarray, got: np.ndarray, tolerance: float) -> dict:
    ordered = np.sort(expected, axis=1)
    decided = ordered[:, -1] - ordered[:, -2] > tolerance  # x86's winner leads by more than the bound
    return {"max_abs_diff": float(np.abs(got - expected).max()), "bound": tolerance,
            "top1_agreement_with_x86": _agreement(expected, got), "top1_compared": int(decided.sum()),
            "top1_mismatches": int((got.argmax(1) != expected.argmax(1))[decided].sum())}


def test_fixture_files_are_the_ones_judged():
    """fixture.json's judgement (int8 agreement with float32, float32's smallest margin) is of these files."""
    record = json.loads((FIXTURE / "fixture.json").read_text())
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, (
            f"{FIXTURE / name} is not the file fixture.json judged; remake it with "
            "python tests/arm/reference.py --make-fixture")
    assert min(j["int8_agrees_with_float32"] for j in record["judged_on_all_photos"]) >= FIXTURE_FIDELITY


@pytest.mark.skipif(not REFERENCE, reason="cross-architecture agreement runs under make test-arm, "
                    "which sets EDGECLF_ARM_REFERENCE to the x86 scores")
def test_outputs_match_x86():
    reference = _reference()
    backend = reference["backend"]
    expected = {name: np.array(scores) for name, scores in reference["scores"].items()}
    got = {name: _scores(reference, name) for name in expected}
    figures = {}
    for name in sorted(expected):
        figures[name] = _figures(expected[name], got[name], INT8_TOLERANCE[backend] if "int8" in name else FLOAT_TOLERANCE)
        partner = name.replace("int8", "float32")
        if partner != name:
            figures[name]["top1_agreement_with_float32"] = {"x86": _agreement(expected[name], expected[partner]),
                                                            "here": _agreement(got[name], got[partner])}
    summary = {"machine": platform.machine(), "backend": backend, "reference_machine": reference["machine"],
               "photos": len(reference["photos"]), "photos_as_fixture_judged": reference["photos_as_fixture_judged"],
               "models": figures}
    (Path(REFERENCE) / "agreement.json").write_text(json.dumps(summary, indent=1))
    fixture = figures["mobilenet_v2_int8.tflite"]["top1_agreement_with_float32"]["x86"]
    assert fixture >= FIXTURE_FIDELITY, f"the x86 int8 MobileNetV2 agrees with its float32 on {fixture:.1%} of the photos"
    for name, row in figures.items():
        if "float32" in name:
            assert row["max_abs_diff"] <= FLOAT_TOLERANCE and row["top1_agreement_with_x86"] == 1.0, f"{name}: {row}"
            continue
        assert row["max_abs_diff"] <= row["bound"] and row["top1_mismatches"] == 0, f"{name}: {row}"
        assert row["top1_compared"] >= len(reference["photos"]) // 2, f"{name}: too few decided photos: {row}"
        fidelity = row["top1_agreement_with_float32"]
        assert fidelity["here"] >= fidelity["x86"] - 0.02, f"{name}: {row}"
