"""Folder scanning, evaluation and benchmarking on real models and images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeclf.runtime.bench import bench
from edgeclf.runtime.evaluate import class_mapping, evaluate
from edgeclf.runtime.folder import DatasetError, eval_root, load, scan
from edgeclf.runtime.model import Model


def _image(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def test_scan_ignores_hidden_and_lists_non_images(tmp_path):
    _image(tmp_path / "cat" / "a.PNG")
    _image(tmp_path / "cat" / ".hidden.png")
    _image(tmp_path / ".trash" / "x.png")
    _image(tmp_path / "dog" / "b.jpg")
    (tmp_path / "dog" / "notes.txt").write_text("hi")
    folder = scan(tmp_path)
    assert folder.classes == ("cat", "dog")
    assert [(p.name, label) for p, label in folder.files] == [("a.PNG", 0), ("b.jpg", 1)]
    assert folder.ignored[0]["path"].endswith("notes.txt")


def test_scan_errors_name_the_folder_and_fix(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        scan(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no class folders inside"):
        scan(tmp_path)
    (tmp_path / "empty_class").mkdir()
    _image(tmp_path / "full" / "a.png")
    with pytest.raises(DatasetError, match="class 'empty_class' has no images"):
        scan(tmp_path)


def test_load_skips_and_lists_unreadable_files(tmp_path):
    _image(tmp_path / "a" / "good.png")
    (tmp_path / "a" / "zero.jpg").write_bytes(b"")
    (tmp_path / "a" / "text.png").write_text("not an image")
    loaded = load(scan(tmp_path).files, 4)
    assert loaded.images.shape == (1, 4, 4, 3)
    reasons = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in loaded.skipped}
    assert reasons == {"text.png": "not a readable image (OpenCV could not decode it)", "zero.jpg": "empty file (0 bytes)"}


def test_eval_root_prefers_val_split(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    assert eval_root(tmp_path) == tmp_path / "val"
    assert eval_root(tmp_path / "val") == tmp_path / "val"


def test_evaluate_counts_and_per_class(tiny_float32, digits_val):
    model = Model(tiny_float32)
    folder = scan(digits_val)
    loaded = load(folder.files, model.input_size)
    targets = class_mapping(folder.classes, model, digits_val)[loaded.labels]
    evaluation = evaluate(model, loaded.images, targets)
    assert evaluation.confusion().sum() == len(targets) == 30
    assert np.trace(evaluation.confusion()) == round(evaluation.accuracy * 30)
    assert evaluation.accuracy > 0.3  # far above chance (0.1) for a trained model
    assert evaluation.top5 >= evaluation.accuracy
    assert sum(c["support"] for c in evaluation.per_class().values()) == 30
    assert evaluation.agreement(evaluation) == 1.0


def test_class_mapping_refuses_unknown_classes(tiny_float32, tmp_path):
    with pytest.raises(DatasetError, match=r"class folders \['cat'\] are not among the labels"):
        class_mapping(["cat"], Model(tiny_float32), tmp_path)


def test_bench_measures_until_runs_and_time(tiny_int8):
    result = bench(tiny_int8, threads=1, runs=20, min_time=0.05, warmup=2)
    stats = result.stats
    assert stats.runs >= 20
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert result.threads == 1 and result.backend.startswith(("ai_edge_litert", "tflite_runtime", "tensorflow"))
    assert stats.throughput == pytest.approx(1000.0 / stats.median_ms)
    assert result.as_dict()["median_ms"] == stats.median_ms and result.input == "random"
