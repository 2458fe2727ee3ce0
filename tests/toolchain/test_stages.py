"""Stage-level contracts: data errors before training, raw-pixel int8 input, the model registry."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeclf.runtime.folder import DatasetError
from edgeclf.runtime.model import Model
from edgeclf.toolchain.build import build
from edgeclf.toolchain.config import BuildConfig
from edgeclf.toolchain.models import ModelBuildError, create_model, get_spec, input_size


def _folder(root, classes, per_class=3):
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"{i}.png"), np.full((8, 8, 3), 20 * i, np.uint8))


@pytest.mark.parametrize("layout, message", [
    ("mismatch", r"train/ classes \['a', 'b'\] differ from val/ classes \['a', 'c'\]"),
    ("single", r"found a single class \['a'\]"),
    ("no_val", "has train/ but no val/ folder"),
])
def test_bad_data_fails_before_training_and_writes_nothing(tmp_path, layout, message):
    data = tmp_path / "data"
    if layout == "mismatch":
        _folder(data / "train", ["a", "b"])
        _folder(data / "val", ["a", "c"])
    elif layout == "single":
        _folder(data, ["a"])
    else:
        _folder(data / "train", ["a", "b"])
    out = tmp_path / "runs"
    config = BuildConfig().override({"data.source": str(data), "model.name": "tiny", "export.out": str(out)})
    with pytest.raises(DatasetError, match=message):
        build(config)
    assert list(out.iterdir()) == []


def test_flat_folder_is_split_stratified(tmp_path):
    from edgeclf.toolchain.data import load_splits

    _folder(tmp_path, ["a", "b"], per_class=10)
    splits = load_splits(str(tmp_path), 8, 0.2, seed=0)
    assert np.bincount(splits.val.labels).tolist() == [2, 2]
    assert np.bincount(splits.train.labels).tolist() == [8, 8]
    assert not set(splits.val.paths) & set(splits.train.paths)


def test_int8_input_takes_raw_pixels_even_when_calibration_never_saw_0_or_255(tmp_path):
    """Calibration images span 20-200 only; the input must still be scale 1, zero point 0."""
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.export import convert_float32, convert_int8

    keras().utils.set_random_seed(0)
    model = create_model(BuildConfig().model.__class__(name="tiny"), 3, 16)
    rng = np.random.default_rng(0)
    calibration = rng.integers(20, 201, (32, 16, 16, 3), dtype=np.uint8)
    (tmp_path / "int8.tflite").write_bytes(convert_int8(model, calibration))
    (tmp_path / "float32.tflite").write_bytes(convert_float32(model))
    int8 = Model(tmp_path / "int8.tflite", labels=["a", "b", "c"])
    assert (int8.input.dtype, int8.input.scale, int8.input.zero_point) == ("uint8", 1.0, 0)
    images = rng.integers(20, 201, (16, 16, 16, 3), dtype=np.uint8)
    reference = Model(tmp_path / "float32.tflite", labels=["a", "b", "c"]).predict(images)
    np.testing.assert_allclose(int8.predict(images), reference, atol=0.05)


def test_registry_sizes_and_mobilenet_without_weights():
    spec = get_spec("mobilenet_v2")
    assert input_size(spec, None) == 96
    with pytest.raises(ModelBuildError, match=r"--size for mobilenet_v2 must be in \[32, 224\]; received 300"):
        input_size(spec, 300)
    config = BuildConfig().model.__class__(name="mobilenet_v2", alpha=0.35, weights="none")
    model = create_model(config, 4, 32)
    assert model.output_shape == (None, 4) and model.layers[1].name == "normalize"
    norms = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert norms and all(layer.momentum == 0.9 for layer in norms)  # from scratch: statistics that keep up
    missing = BuildConfig().model.__class__(name="mobilenet_v2", alpha=0.35, weights="/nope/weights.h5")
    with pytest.raises(ModelBuildError, match="--weights /nope/weights.h5: no such file"):
        create_model(missing, 4, 32)


def test_calibration_from_its_own_folder_is_reported(tmp_path):
    import json

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(12):
        cv2.imwrite(str(calib / f"{i}.png"), np.full((8, 8, 3), 20 * i, np.uint8))
    config = BuildConfig().override({"model.name": "tiny", "model.size": 16, "train.epochs": 1, "quantize.int8": True,
                                     "quantize.calib_data": str(calib), "export.out": str(tmp_path / "runs")})
    report = json.loads((build(config).run_dir / "report.json").read_text())
    assert report["calibration"]["source"] == str(calib) and report["calibration"]["size"] == 12
    assert isinstance(report["calibration"]["warnings"], list)
