"""The converter path edgeclf uses gives the model Keras' own converter gives, faster."""
from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime.model import Model
from edgeclf.toolchain import export
from edgeclf.toolchain._tf import keras, tf
from edgeclf.toolchain.config import ModelConfig
from edgeclf.toolchain.models import create_model


@pytest.fixture(scope="module")
def cnn_model():
    keras().utils.set_random_seed(3)
    return create_model(ModelConfig(name="cnn"), 4, 32)


def _load(tmp_path, name: str, content: bytes) -> Model:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(content)
    return Model(path)


def test_float32_matches_keras_converter(cnn_model, tmp_path):
    ours = _load(tmp_path, "ours", export.convert_float32(cnn_model))
    keras_own = _load(tmp_path, "keras", tf().lite.TFLiteConverter.from_keras_model(cnn_model).convert())
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(ours.predict(images), keras_own.predict(images), atol=1e-6)
    np.testing.assert_allclose(ours.predict(images), cnn_model.predict(images.astype(np.float32), verbose=0), atol=1e-5)
    for a, b in ((ours.input, keras_own.input), (ours.output, keras_own.output)):
        assert (a.name, a.dtype, a.shape) == (b.name, b.dtype, b.shape)
    assert ours.input.name == "serving_default_pixels:0"
    assert _signatures(ours.content) == _signatures(keras_own.content) == {
        "serving_default": {"inputs": ["pixels"], "outputs": ["classifier"]}}


def _signatures(content: bytes) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content).get_signature_list()


def test_quantized_variants_keep_the_serving_signature(cnn_model):
    """Converted in memory (no SavedModel round trip), every variant still has Keras' signature and names,
    so an app's signature runner finds 'serving_default'."""
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    for name in ("int8", "dynamic", "float16"):
        content = export.variant(name).convert(cnn_model, export.Calibrated(images))
        assert _signatures(content) == {"serving_default": {"inputs": ["pixels"], "outputs": ["classifier"]}}, name


def test_batch_dimension_stays_resizable(cnn_model, tmp_path):
    """Batched eval resizes the input to 32 images: the converted input keeps a free batch dimension."""
    model = _load(tmp_path, "ours", export.convert_float32(cnn_model))
    model.predict(np.zeros((2, 32, 32, 3), np.uint8))
    assert model._batched_interpreter() is not None  # resize_tensor_input(strict=True) accepted it
