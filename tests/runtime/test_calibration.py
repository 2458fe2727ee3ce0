"""The representative set: class-stratified, seeded, and refusing normalized floats."""
from __future__ import annotations

import numpy as np
import pytest

from edgeclf.calibration import CalibrationError, select
from edgeclf.calibration.representative import stratified_indices


def test_stratified_keeps_class_shares_and_every_class():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    chosen = stratified_indices(labels, 100, seed=0)
    counts = np.bincount(labels[chosen])
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    assert counts.tolist() == [90, 9, 1]


def test_seeded_and_all_when_fewer():
    labels = np.repeat(np.arange(5), 40)
    assert np.array_equal(stratified_indices(labels, 50, 3), stratified_indices(labels, 50, 3))
    assert not np.array_equal(stratified_indices(labels, 50, 3), stratified_indices(labels, 50, 4))
    assert len(stratified_indices(labels, 500, 0)) == 200


def test_select_reports_counts_range_and_digest():
    images = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    labels = np.repeat([0, 1, 2], 20)
    paths = [f"img{i}.png" for i in range(60)]
    chosen = select(images, labels, ["a", "b", "c"], paths, size=30, seed=1)
    assert chosen.per_class == {"a": 10, "b": 10, "c": 10}
    assert chosen.as_dict()["size"] == 30 and len(chosen.digest) == 64
    assert select(images, labels, ["a", "b", "c"], paths, size=30, seed=1).digest == chosen.digest


def test_select_refuses_normalized_floats():
    with pytest.raises(CalibrationError, match="received float32"):
        select(np.zeros((4, 2, 2, 3), np.float32), np.zeros(4, int), ["a"], ["p"] * 4)
