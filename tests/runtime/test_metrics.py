"""Statistics and metrics against hand-computed values; regression detection; batched inference."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.bench import LatencyStats, regressions
from edgeclf.runtime.evaluate import Evaluation, divergence, flips
from edgeclf.runtime.model import Model


def test_latency_statistics_of_a_known_series():
    stats = LatencyStats.of([float(v) for v in range(10, 0, -1)])  # 1..10 ms, unordered
    assert (stats.runs, stats.median_ms, stats.mean_ms, stats.min_ms, stats.max_ms) == (10, 5.5, 5.5, 1.0, 10.0)
    assert stats.std_ms == pytest.approx(math.sqrt(8.25))
    assert stats.p90_ms == pytest.approx(9.1) and stats.p99_ms == pytest.approx(9.91)
    assert stats.throughput == pytest.approx(1000 / 5.5)
    with pytest.raises(ValueError):
        LatencyStats.of([])


def _evaluation(predictions, targets, paths=None):
    scores = np.full((len(predictions), 3), 0.1, np.float32)
    scores[np.arange(len(predictions)), predictions] = 0.8
    return Evaluation(["cat", "dog", "owl"], np.array(targets), scores, paths)


def test_eval_metrics_match_hand_computed_values():
    evaluation = _evaluation([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2], [f"f{i}.jpg" for i in range(6)])
    assert evaluation.confusion().tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert evaluation.accuracy == pytest.approx(4 / 6) and evaluation.top5 == 1.0
    per_class = evaluation.per_class()
    assert per_class["cat"] == pytest.approx({"support": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert per_class["dog"] == pytest.approx({"support": 2, "precision": 2 / 3, "recall": 1.0, "f1": 0.8})
    assert per_class["owl"] == pytest.approx({"support": 2, "precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert [(m["path"], m["label"], m["predicted"]) for m in evaluation.misclassified()] == [
        ("f1.jpg", "cat", "dog"), ("f5.jpg", "owl", "cat")]


def test_divergence_and_flips():
    same = _evaluation([0, 1, 2], [0, 1, 2])
    assert divergence(same, same) == pytest.approx({"mean_kl": 0.0, "mean_cosine": 1.0})
    p = Evaluation(["a", "b"], np.array([0]), np.array([[0.5, 0.5]], np.float32))
    q = Evaluation(["a", "b"], np.array([0]), np.array([[0.9, 0.1]], np.float32))
    expected_kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert divergence(p, q)["mean_kl"] == pytest.approx(expected_kl, rel=1e-5)
    reference = _evaluation([0, 1, 2, 0], [0, 1, 1, 2], ["a", "b", "c", "d"])
    other = _evaluation([0, 2, 1, 1], [0, 1, 1, 2], ["a", "b", "c", "d"])
    assert [(f["path"], f["outcome"]) for f in flips(reference, other)] == [
        ("b", "broken"), ("c", "fixed"), ("d", "both_wrong")]


def test_regressions_match_by_file_and_threads():
    baseline = [{"model": "/old/m.tflite", "threads": 1, "median_ms": 1.0},
                {"model": "/old/m.tflite", "threads": 2, "median_ms": 1.0}]
    results = [{"model": "runs/m.tflite", "threads": 1, "median_ms": 1.25},
               {"model": "runs/m.tflite", "threads": 2, "median_ms": 1.05},
               {"model": "runs/other.tflite", "threads": 1, "median_ms": 9.0}]
    found = regressions(results, baseline, 0.10)
    assert len(found) == 1 and "m.tflite @ 1 threads" in found[0] and "+25.0%" in found[0]


def test_bench_compare_to_exit_codes(tiny_int8, tmp_path):
    runner = CliRunner()
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps({"results": [{"model": "model_int8.tflite", "threads": 1, "median_ms": 1e-9}]}))
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps([{"model": "model_int8.tflite", "threads": 1, "median_ms": 1e9}]))
    args = ["bench", str(tiny_int8), "--runs", "5", "--min-time", "0"]
    regressed = runner.invoke(cli, [*args, "--compare-to", str(fast)])
    assert regressed.exit_code == 1 and "latency regressed: model_int8.tflite @ 1 threads" in regressed.output
    assert runner.invoke(cli, [*args, "--compare-to", str(slow)]).exit_code == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = runner.invoke(cli, [*args, "--compare-to", str(broken)])
    assert result.exit_code == 2 and "broken.json: not a readable `edgeclf bench --json` file" in result.output


def test_bench_with_real_images_reports_the_source(tiny_int8, digits_val):
    result = CliRunner().invoke(cli, ["bench", str(tiny_int8), "--data", str(digits_val), "--runs", "5",
                                      "--min-time", "0", "--json"])
    out = json.loads(result.output)
    assert out["results"][0]["input"] == str(digits_val) and out["results"][0]["peak_rss_mb"] > 0
    assert out["results"][0]["p99_ms"] >= out["results"][0]["median_ms"] and out["cpu"]


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_batched_predict_equals_one_image_at_a_time(fixtures, variant):
    model = Model(fixtures / "digits_tiny" / f"model_{variant}.tflite")
    images = np.random.default_rng(1).integers(0, 256, (70, 16, 16, 3), dtype=np.uint8)  # 2 full chunks + 6
    batched = model.predict(images)
    assert model._batched  # the interpreter accepted a batch dimension
    single = np.concatenate([model.predict(image) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-6)
