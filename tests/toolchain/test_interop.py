"""Artifacts are what their names say, carry metadata, and MediaPipe Tasks reads them like we do."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.folder import load, scan
from edgeclf.runtime.model import Model

ROOT = Path(__file__).resolve().parents[2]
MEDIAPIPE_PYTHON = ROOT / ".venv-mediapipe" / "bin" / "python"
MEDIAPIPE_READY = (ROOT / ".venv-mediapipe" / ".installed").is_file()


def test_artifact_names_match_their_tensors_and_report(tiny_run, tiny_report):
    for variant, entry in tiny_report["artifacts"].items():
        path = tiny_run / entry["path"]
        assert path.name == f"model_{variant}.tflite"
        model = Model(path)
        assert entry["input"] == model.input.as_dict() and entry["output"] == model.output.as_dict()
        if variant == "float32":
            assert model.input.dtype == model.output.dtype == "float32" and model.structure.float_ops()
        elif variant == "int8":
            assert model.input.dtype == "uint8" and model.structure.float_ops() == []
            assert "int8" in model.metadata.name and "uint8 pixels, scale 1" in model.metadata.description
        assert model.metadata.labels == tuple(tiny_report["dataset"]["classes"])
        assert (model.metadata.mean, model.metadata.std, model.metadata.color_space) == ((0.0,), (1.0,), "RGB")


@pytest.mark.skipif(not MEDIAPIPE_READY, reason="the MediaPipe venv is missing: `make install-mediapipe` "
                    "(mediapipe needs absl-py 2, so it cannot share the toolchain's venv)")
@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_mediapipe_image_classifier_reads_our_artifacts(tiny_run, tiny_report, variant, tmp_path):
    model_path = tiny_run / f"model_{variant}.tflite"
    folder = scan(os.path.join(tiny_report["dataset"]["root"], "val"))
    # An image already at the input size: MediaPipe and edgeclf then feed the same pixels.
    image = load(folder.files[::40][:3], 32).images
    scripts = Path(__file__).parents[1] / "interop" / "mediapipe_classify.py"
    for i, pixels in enumerate(image):
        path = tmp_path / f"image{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        proc = subprocess.run([str(MEDIAPIPE_PYTHON), str(scripts), str(model_path), str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        theirs = {c["label"]: c["score"] for c in json.loads(proc.stdout.strip().splitlines()[-1])}
        ours_run = CliRunner().invoke(cli, ["classify", str(model_path), str(path), "-k", "10", "--json"])
        ours = {t["label"]: t["score"] for t in json.loads(ours_run.output)[0]["top_k"]}
        assert set(theirs) == set(ours) == set(tiny_report["dataset"]["classes"])
        for label, score in ours.items():
            assert abs(theirs[label] - score) <= 1e-3, (label, theirs[label], score)
