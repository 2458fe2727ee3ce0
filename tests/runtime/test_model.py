"""Model: loading real .tflite files with the LiteRT interpreter, I/O details, labels, predict."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from edgeclf.runtime.folder import load, scan
from edgeclf.runtime.model import Model, ModelError


def test_int8_model_takes_raw_uint8_pixels(tiny_int8):
    model = Model(tiny_int8)
    assert (model.input.dtype, model.input.scale, model.input.zero_point) == ("uint8", 1.0, 0)
    assert model.output.dtype == "uint8" and model.output.quantized
    assert model.structure.float_ops() == []
    pixels = np.full((16, 16, 3), 77, np.uint8)
    assert np.array_equal(model.prepare(pixels)[0], pixels)  # no arithmetic on the way in


def test_float_model_details_and_labels(tiny_float32):
    model = Model(tiny_float32)
    assert model.input.dtype == "float32" and not model.input.quantized
    assert model.input_size == (16, 16)
    assert model.labels == [str(i) for i in range(10)]
    assert "CONV_2D" in model.structure.op_counts()
    assert model.structure.float_ops()  # a float model computes in float


def test_predict_returns_probabilities_for_any_input_size(tiny_float32, tiny_int8):
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    for path in (tiny_float32, tiny_int8):
        scores = Model(path).predict(image)
        assert scores.shape == (1, 10) and scores.dtype == np.float32
        assert abs(float(scores.sum()) - 1.0) < 0.02


def test_int8_agrees_with_float32(tiny_float32, tiny_int8, digits_val):
    folder = scan(digits_val)
    images = load(folder.files, 16).images
    float_pred = Model(tiny_float32).predict(images).argmax(1)
    int8_pred = Model(tiny_int8).predict(images).argmax(1)
    assert np.mean(float_pred == int8_pred) >= 0.85


def test_prepare_rejects_non_rgb(tiny_float32):
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image; received float64"):
        Model(tiny_float32).prepare(np.zeros((16, 16, 3)))


def test_missing_labels_fall_back_to_indices_with_a_warning(fixtures, tmp_path, caplog):
    lone = tmp_path / "model.tflite"
    shutil.copy(fixtures / "no_metadata" / "model.tflite", lone)
    with caplog.at_level(logging.WARNING):
        model = Model(lone)
    assert model.labels == [str(i) for i in range(10)]
    assert "no labels in its metadata and no labels.txt beside it" in caplog.text


def test_labels_txt_beside_a_model_without_metadata(fixtures, tmp_path):
    lone = tmp_path / "model.tflite"
    shutil.copy(fixtures / "no_metadata" / "model.tflite", lone)
    (tmp_path / "labels.txt").write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    assert Model(lone).labels[3] == "digit 3"


@pytest.mark.parametrize("content, message", [
    (b"", "not a TFLite model"),
    (b"hello, I am a text file\n", "not a TFLite model"),
])
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=rf"bad\.tflite: {message}"):
        Model(path)


def test_truncated_model_is_refused(tiny_float32, tmp_path):
    path = tmp_path / "truncated.tflite"
    path.write_bytes(tiny_float32.read_bytes()[:2000])
    with pytest.raises(ModelError, match=r"truncated\.tflite"):
        Model(path)


def test_missing_model_says_so(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        Model(tmp_path / "nope.tflite")


# runtime/_backend.py's resolution order: (module, distribution, backend name)
_BACKENDS = (("ai_edge_litert", "ai-edge-litert", "ai_edge_litert"), ("tflite_runtime", "tflite-runtime", "tflite_runtime"),
             ("tensorflow", "tensorflow", "tensorflow.lite"))


def test_backend_is_the_one_this_environment_provides():
    """The backend is the first of ai_edge_litert, tflite_runtime, tensorflow that this environment has
    installed, at its installed version: what was installed is read from the environment itself (found
    without importing, so TensorFlow stays unloaded), so the test holds wherever a user runs it: the x86
    venvs, arm64 Pi OS with LiteRT, armhf Pi OS with tflite-runtime 2.14. It fails when resolution picks
    another (e.g. falls through a broken LiteRT to a slower backend). The Makefile and test-arm also set
    EDGECLF_EXPECT_BACKEND to the backend the environment was built to have: an environment that got
    another one (say ai-edge-litert pulled into the tflite-runtime venv) fails too."""
    import importlib.metadata
    import importlib.util
    import os

    from edgeclf.runtime._backend import BackendError, get_backend

    installed = [(dist, name) for module, dist, name in _BACKENDS if importlib.util.find_spec(module) is not None]
    if not installed:
        with pytest.raises(BackendError, match="No TFLite interpreter could be imported"):
            get_backend()
        return
    distribution, expected = installed[0]
    backend = get_backend()
    assert backend.name == expected, f"{[name for _, name in installed]} installed"
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # installed without pip's metadata: no version to compare
        version = backend.version
    assert backend.version == version
    harness = os.environ.get("EDGECLF_EXPECT_BACKEND")
    assert harness in (None, expected), f"this environment was meant to have {harness}; it has {expected}"
