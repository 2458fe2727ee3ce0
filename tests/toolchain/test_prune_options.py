"""--prune-structure M:N and --prune-skip: the structure and the dense layers are measured, not assumed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclf.toolchain.build import build
from edgeclf.toolchain.config import BuildConfig, ConfigError
from edgeclf.toolchain.prune import m_by_n_conformance

SMALL = {"model.name": "cnn", "model.size": 16, "train.epochs": 1, "prune.epochs": 2}


def test_two_four_structure_is_followed_by_every_pruned_layer(tmp_path):
    config = BuildConfig().override({**SMALL, "prune.structure": "2:4", "export.out": str(tmp_path)})
    report = json.loads((build(config).run_dir / "report.json").read_text())
    sparsity = report["sparsity"]
    assert sparsity["structure"] == "2:4" and abs(sparsity["overall"] - 0.5) <= 0.02
    pruned = {name: layer for name, layer in sparsity["layers"].items() if layer["pruned"]}
    assert set(pruned) == {"conv2", "conv3"}
    assert all(layer["m_by_n_conformance"] == 1.0 for layer in pruned.values())


def test_prune_skip_keeps_matching_layers_dense(tmp_path):
    config = BuildConfig().override({**SMALL, "prune.sparsity": 0.5, "prune.skip": ["conv3*"],
                                     "export.out": str(tmp_path)})
    report = json.loads((build(config).run_dir / "report.json").read_text())
    layers = report["sparsity"]["layers"]
    assert report["sparsity"]["dense_layers"] == ["conv1", "conv3", "classifier"]
    assert layers["conv3"]["sparsity"] < 0.05 and abs(layers["conv2"]["sparsity"] - 0.5) <= 0.02


def test_conformance_counts_groups_along_input_channels():
    kernel = np.ones((1, 1, 8, 2), np.float32)
    kernel[0, 0, [0, 1, 4, 5], :] = 0  # two zeros in each group of four input channels
    assert m_by_n_conformance(kernel, (2, 4)) == 1.0
    kernel[0, 0, 5, 1] = 3.0  # one group of output channel 1 now has a single zero
    assert m_by_n_conformance(kernel, (2, 4)) == 0.75


@pytest.mark.parametrize("values, message", [
    ({"prune.structure": "4:2"}, "--prune-structure must be unstructured or M:N with 0 < M < N; received '4:2'"),
    ({"prune.structure": "2:4", "prune.sparsity": 0.3}, "--prune-structure 2:4 sets the sparsity to 0.5; received --prune 0.3"),
    ({"prune.skip": [""]}, "--prune-skip takes layer-name patterns"),
])
def test_bad_prune_options(values, message):
    with pytest.raises(ConfigError) as info:
        BuildConfig().override(values)
    assert message in str(info.value)
