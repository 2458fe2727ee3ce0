"""compare's flip list on a crafted pair of models whose decisions differ on known images."""
from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.metadata import ModelMetadata, write
from edgeclf.toolchain._tf import keras
from edgeclf.toolchain.export import convert_float32


def _brightness_model(threshold: float):
    """Class 'bright' when the mean pixel is above `threshold` (0-255), else 'dark'; softmax of a margin."""
    k = keras()
    inputs = k.layers.Input((8, 8, 3))
    mean = k.layers.GlobalAveragePooling2D()(inputs)
    outputs = k.layers.Dense(2, activation="softmax")(mean)
    model = k.Model(inputs, outputs)
    # Output 0 is 'bright', 1 is 'dark': logits +-0.1 * (mean - threshold), the mean split over 3 channels.
    weights = np.array([[0.1 / 3, -0.1 / 3]] * 3, np.float32)
    bias = np.array([-0.1 * threshold, 0.1 * threshold], np.float32)
    model.layers[-1].set_weights([weights, bias])
    return model


def test_compare_lists_exactly_the_flipped_files(tmp_path):
    paths = {}
    for label, values in {"dark": [20, 110, 130], "bright": [120, 140, 240]}.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for value in values:
            path = tmp_path / "data" / label / f"v{value}.png"
            cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))
            paths[value] = str(path)
    models = []
    for name, threshold in (("a", 100.0), ("b", 135.0)):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(write(convert_float32(_brightness_model(threshold)),
                               ModelMetadata(name=name, labels=("bright", "dark"))))
        models.append(str(path))
    result = CliRunner().invoke(cli, ["compare", *models, "--data", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["models"]
    # a (threshold 100) calls 110, 120, 130, 140, 240 bright; b (threshold 135) only 140 and 240.
    flipped = {(f["path"], f["reference"], f["other"], f["outcome"]) for f in rows[1]["flips"]}
    assert flipped == {(paths[110], "bright", "dark", "fixed"), (paths[130], "bright", "dark", "fixed"),
                       (paths[120], "bright", "dark", "broken")}
    assert rows[0]["accuracy"] == 4 / 6 and rows[1]["accuracy"] == 5 / 6  # a misses 110 and 130; b misses 120
    assert rows[1]["difference_pts"] == 100 * (5 / 6 - 4 / 6) and rows[1]["agreement"] == 3 / 6
    gated = CliRunner().invoke(cli, ["compare", models[1], models[0], "--data", str(tmp_path / "data"), "--max-drop", "10"])
    assert gated.exit_code == 1 and "16.67 points below" in gated.output
