"""The representative set: class-stratified, seeded, and refusing normalized floats."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from edgeclf.calibration import CalibrationError, check, from_folder, select
from edgeclf.runtime.datasets import stratified_indices


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


@pytest.mark.parametrize("values, found", [
    (np.linspace(0, 1, 48, dtype=np.float32), "[0, 1]-style values"),
    (np.linspace(-1, 1, 48, dtype=np.float32), "[-1, 1]-style values"),
    (np.linspace(0, 255, 48, dtype=np.float32), "float pixels (range 0.0 to 255.0)"),
])
def test_the_classic_range_mistakes_are_named(values, found):
    with pytest.raises(CalibrationError, match=re.escape(found)):
        select(values.reshape(4, 2, 2, 3), np.zeros(4, int), ["a"], ["p"] * 4)


def _pixels(value, count=20, spread=20, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(value, spread, (count, 8, 8, 3)), 0, 255).astype(np.uint8)


def test_check_catches_a_scale_mismatch_and_warns_about_odd_sets():
    training = _pixels(128)
    with pytest.raises(CalibrationError, match="calibration pixels reach only 1 while training pixels reach"):
        check(np.ones((4, 8, 8, 3), np.uint8), {}, training, [])
    warnings = check(_pixels(250, spread=1), {"a": 2, "b": 30}, training, ["a", "b"])
    assert any("brightness" in w for w in warnings)
    assert any("fewer than 5 calibration images: a (2)" in w for w in warnings)
    assert check(_pixels(128, seed=1), {"a": 10, "b": 10}, training, ["a", "b"]) == []


def test_from_folder_with_and_without_class_folders(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(tmp_path / "classes" / name / f"{i}.png"), np.full((20, 20, 3), 40 * i, np.uint8))
    chosen, images = from_folder(tmp_path / "classes", 8, size=4, seed=0)
    assert chosen.per_class == {"cat": 2, "dog": 2} and images.shape == (4, 8, 8, 3)
    assert chosen.source == str(tmp_path / "classes")
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        cv2.imwrite(str(flat / f"{i}.jpg"), np.full((20, 20, 3), 90, np.uint8))
    chosen, images = from_folder(flat, 8, size=300)
    assert len(images) == 3 and chosen.per_class == {"(unlabelled)": 3}
    with pytest.raises(CalibrationError, match="--calib-data .*missing: no such folder"):
        from_folder(tmp_path / "missing", 8)
