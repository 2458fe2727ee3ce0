"""The Keras application families (their normalization, full-int8 conversion, offline weights, tfmot refusals),
`edgeclf candidates` and `build --latency-budget` (selection on a crafted device.json and every error)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.model import Model
from edgeclf.toolchain import choose
from edgeclf.toolchain.config import BuildConfig, ModelConfig
from edgeclf.toolchain.models import ModelBuildError, create_model

FAMILIES = ["mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "resnet50"]


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_converts_to_full_int8_with_uint8_io(name, tmp_path):
    from edgeclf.toolchain.export import convert_int8

    model = create_model(ModelConfig(name=name, weights="none"), 3, 32)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(convert_int8(model, images))
    converted = Model(path)
    assert converted.structure.float_ops() == [] and converted.full_integer
    assert converted.input.dtype == "uint8" and converted.output.dtype == "uint8"
    assert converted.predict(images[0]).shape == (1, 3)


@pytest.mark.parametrize("name, application, preprocess", [
    ("resnet50", "ResNet50", "resnet50"),  # caffe: BGR minus the ImageNet mean; edgeclf reverses conv1 instead
    ("mobilenet_v3_small", "MobileNetV3Small", None),  # Keras' own Rescaling (include_preprocessing) vs edgeclf's
])  # (EfficientNetB0 keeps Keras' own normalization inside its base; its ImageNet correction is tested below)
def test_a_weights_file_gives_the_features_keras_gives_with_its_preprocessing(name, application, preprocess, tmp_path):
    """--weights PATH with RGB 0-255 pixels in == Keras' application with its own preprocessing on the same pixels."""
    from edgeclf.toolchain._tf import keras

    keras().utils.set_random_seed(1)
    reference = getattr(keras().applications, application)(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                           pooling="avg")
    path = tmp_path / "weights.h5"
    reference.save_weights(path)
    image = np.random.default_rng(2).integers(0, 256, (32, 32, 3)).astype(np.float32)
    pixels = getattr(keras().applications, preprocess).preprocess_input(image.copy()) if preprocess else image
    expected = reference(pixels[None], training=False).numpy()
    model = create_model(ModelConfig(name=name, weights=str(path)), 3, 32)
    features = keras().Model(model.input, model.get_layer("classifier").input)(image[None], training=False).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def test_efficientnet_imagenet_normalization_matches_keras_fix():
    """Keras multiplies EfficientNet's normalized input by 1/sqrt(std) for its ImageNet file; edgeclf's normalize
    layer in front must give the same numbers once the base's Rescaling(1/255) and Normalization follow."""
    from edgeclf.toolchain.models import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, _efficientnet_imagenet_normalize

    scale, offset = (np.array(v) for v in _efficientnet_imagenet_normalize())
    x = np.linspace(0, 255, 12).reshape(4, 3)
    mean, std = np.array(IMAGENET_MEAN_RGB), np.array(IMAGENET_STD_RGB)
    ours = ((scale * x + offset) / 255 - mean) / std
    keras_fix = (x / 255 - mean) / std / np.sqrt(std)
    np.testing.assert_allclose(ours, keras_fix, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, config, file_name", [
    ("mobilenet_v3_small", {}, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    ("mobilenet_v3_large", {"alpha": 0.75}, "weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5"),
    ("mobilenet_v3_small", {"minimalistic": True}, "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5"),
    ("efficientnet_b0", {}, "efficientnetb0_notop.h5"),
    ("resnet50", {}, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_offline_imagenet_message_names_the_exact_file_and_folder(name, config, file_name, tmp_path, monkeypatch,
                                                                   offline):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ModelBuildError) as error:
        create_model(ModelConfig(name=name, weights="imagenet", **config), 3, 96)
    assert str(tmp_path / "keras" / "models" / file_name) in str(error.value)


def test_mobilenet_v3_width_without_imagenet_weights_says_which_exist(offline):
    with pytest.raises(ModelBuildError, match=r"no ImageNet weights for mobilenet_v3_small with alpha 0.5.*0.75 and 1.0"):
        create_model(ModelConfig(name="mobilenet_v3_small", alpha=0.5, weights="imagenet"), 3, 96)


@pytest.mark.parametrize("flags, message", [
    ({"model.alpha": 0.6, "model.name": "mobilenet_v3_small"}, "--alpha for mobilenet_v3_small must be one of"),
    ({"model.minimalistic": True, "model.name": "resnet50"}, "--minimalistic applies to mobilenet_v3_small"),
])
def test_family_options_are_checked(flags, message):
    from edgeclf.toolchain.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        BuildConfig().override(flags)


def test_qat_on_a_family_tfmot_cannot_wrap_is_refused_before_training(tmp_path):
    result = CliRunner().invoke(cli, ["build", "--data", "digits", "--model", "mobilenet_v3_small", "--weights", "none",
                                      "--size", "32", "--int8", "--qat", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "--qat: tfmot 0.8.1 cannot wrap mobilenet_v3_small" in result.output
    assert "Build without --qat" in result.output and "TFOpLambda" in result.output
    assert "epoch" not in result.output.lower() and not (tmp_path / "runs" / "latest").exists()


@pytest.mark.parametrize("name, config, problem", [
    ("efficientnet_b0", {}, "is not supported"),  # its Normalization layer first (its Multiply would be next)
    ("mobilenet_v3_small", {"minimalistic": True}, None),  # no hard-swish, no squeeze-excite: tfmot wraps it
])
def test_which_families_tfmot_wraps_for_qat(name, config, problem):
    from edgeclf.toolchain.qat import quantization_aware_problem

    found = quantization_aware_problem(create_model(ModelConfig(name=name, weights="none", **config), 3, 32))
    assert (found is None) if problem is None else (problem in found)


# --- candidates and the latency budget ----------------------------------------------------------------

GRID = {"choice.models": ("tiny", "cnn"), "choice.sizes": (16, 24)}
CANDIDATES = choose.grid(GRID["choice.models"], (1.0,), GRID["choice.sizes"])
CRAFTED_MS = {"tiny_16": 1.0, "tiny_24": 2.0, "cnn_16": 3.0, "cnn_24": 9.0}


def _device_json(path: Path, grid: str | None = None, variants=("int8", "float32"), threads: int = 1,
                 times: dict | None = None) -> Path:
    grid = grid or choose.grid_id(CANDIDATES)
    results = [{"model": f"/device/{cid}_{variant}.tflite", "name": f"edgeclf candidate {grid} {cid} {variant}",
                "bytes": 1000 + i, "threads": threads, "median_ms": ms * (1.0 if variant == "int8" else 1.5)}
               for i, (cid, ms) in enumerate((times or CRAFTED_MS).items()) for variant in variants]
    path.write_text(json.dumps({"cpu": "crafted", "results": results}))
    return path


def test_crafted_device_json_selects_among_fitting_candidates_and_reports_the_table(choice_run):
    run, device, result = choice_run  # the build (conftest.py) is shared with tests/toolchain/test_report_html.py
    assert result.exit_code == 0, result.output
    report = json.loads((run / "report.json").read_text())
    choice = report["model_choice"]
    table = {row["candidate"]: row for row in choice["candidates"]}
    assert {c for c, row in table.items() if row["fits"]} == {"tiny_16", "tiny_24", "cnn_16"}
    tried = {c for c, row in table.items() if row["short_run_accuracy"] is not None}
    # one per family: digits are 8 x 8, so each family's widest at the smallest fitting size (16 px covers them)
    assert tried == {"cnn_16", "tiny_16"} and choice["image_side"] == 8
    brief = max(tried, key=lambda c: (table[c]["short_run_accuracy"], -table[c]["latency_ms"]))
    full = {c: row["full_run_accuracy"] for c, row in table.items() if row["full_run_accuracy"] is not None}
    assert set(full) == {c for c in tried if table[c]["short_run_accuracy"] >=
                         table[brief]["short_run_accuracy"] - choose.BRIEF_RUN_MARGIN} and brief in full
    # the budget is for int8: every full run is judged by its int8 top-1, and the best of those is the model
    int8 = {c: row["full_run_int8_accuracy"] for c, row in table.items() if row["full_run_int8_accuracy"] is not None}
    assert set(int8) == set(full)
    best = max(int8, key=lambda c: (int8[c], -table[c]["latency_ms"]))
    assert choice["chosen"] == best and table[best]["chosen"] and sum(r["chosen"] for r in table.values()) == 1
    # the build keeps the full run's model: its float32 artifact scores what that run's best epoch scored, and its
    # int8 artifact what the choice measured (the same conversion of the same weights)
    assert report["artifacts"]["float32"]["accuracy"] == pytest.approx(full[best], abs=0.005)
    assert report["artifacts"]["int8"]["accuracy"] == pytest.approx(int8[best], abs=0.0001)
    assert table["cnn_16"]["latency_ms"] == 3.0 and choice["measured_on"].endswith(str(device))
    model, size = best.rsplit("_", 1)
    assert report["model"]["name"] == model and report["model"]["size"] == int(size)
    assert "int8" in report["artifacts"]  # the budget is for int8, so int8 is built
    markdown = (run / "report.md").read_text()
    assert "## Model choice" in markdown and "full-run int8 top-1" in markdown and "converted to full int8" in markdown
    assert "Model choice" in (run / "report.html").read_text()


def test_a_finalist_whose_brief_run_beat_every_full_run_as_deployed_is_trained_fully_too():
    timings = {m: choose.Timing(choose.Candidate(m, None, 32), ms, 1000) for m, ms in
               (("efficientnet_b0", 3.0), ("cnn", 2.0), ("tiny", 1.0), ("resnet_mini", 1.5))}
    tried = list(timings.values())
    trials = {"efficientnet_b0_32": 0.90, "cnn_32": 0.85, "tiny_32": 0.85, "resnet_mini_32": 0.60}
    # int8 kept the full run's lead: nothing more to train
    assert choose.next_contender(tried, trials, {"efficientnet_b0_32": 0.93}) is None
    # int8 lost it (EfficientNetB0 on the photos: 53 points): the best brief run left, the faster on a tie
    assert choose.next_contender(tried, trials, {"efficientnet_b0_32": 0.40}) is timings["tiny"]
    assert choose.next_contender(tried, trials, {"efficientnet_b0_32": 0.40, "tiny_32": 0.80}) is timings["cnn"]
    # a brief run below the best deployed accuracy never is
    assert choose.next_contender(tried, trials, {"efficientnet_b0_32": 0.40, "tiny_32": 0.86}) is None
    assert choose.next_contender(tried, trials, {c: 0.5 for c in trials}) is None  # every finalist trained


def test_finalists_prefer_the_smallest_size_that_covers_the_images_and_then_the_widest():
    fit = [choose.Timing(choose.Candidate(m, a, size), ms, 1000) for m, a, size, ms in
           (("mobilenet_v2", 0.5, 32, 1.0), ("mobilenet_v2", 1.0, 32, 2.0), ("mobilenet_v2", 0.5, 48, 2.5),
            ("mobilenet_v2", 1.0, 48, 4.0), ("cnn", None, 32, 1.5), ("cnn", None, 48, 3.0))]
    ids = [t.candidate.id for t in choose.finalists(fit, 6, image_side=8)]
    assert ids[:2] == ["mobilenet_v2_1_32", "cnn_32"] and ids[2] == "mobilenet_v2_0.5_32"  # 32 px covers 8 px
    assert [t.candidate.id for t in choose.finalists(fit, 2, image_side=40)] == ["mobilenet_v2_1_48", "cnn_48"]
    # no size covers 160 px images (or the side is unknown): each family's largest, widest first
    for side in (160, None):
        assert [t.candidate.id for t in choose.finalists(fit, 3, side)] == ["mobilenet_v2_1_48", "cnn_48",
                                                                          "mobilenet_v2_0.5_48"]


def test_image_side_is_the_median_shorter_side(tmp_path):
    from edgeclf.toolchain.data import image_side

    (tmp_path / "a").mkdir()
    for i, (h, w) in enumerate(((20, 30), (40, 25), (50, 60))):
        cv2.imwrite(str(tmp_path / "a" / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"not an image")
    assert image_side(str(tmp_path)) == 25
    assert image_side("digits") == 8


def test_contenders_are_the_best_brief_run_and_those_within_the_margin():
    timings = [choose.Timing(choose.Candidate(m, None, 32), ms, 1000) for m, ms in
               (("cnn", 3.0), ("tiny", 1.0), ("resnet_mini", 2.0))]
    near = {"cnn_32": 0.90, "tiny_32": 0.90, "resnet_mini_32": 0.885}
    assert [t.candidate.id for t in choose.contenders(timings, near, 2)] == ["tiny_32", "cnn_32"]  # tie: faster first
    assert [t.candidate.id for t in choose.contenders(timings, near, 3)] == ["tiny_32", "cnn_32", "resnet_mini_32"]
    apart = {"cnn_32": 0.95, "tiny_32": 0.90, "resnet_mini_32": 0.70}
    assert [t.candidate.id for t in choose.contenders(timings, apart, 2)] == ["cnn_32"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not json"), "not readable as `edgeclf bench --json` output"),
    (lambda p: p.write_text(json.dumps({"results": [{"model": "m.tflite", "name": "my model", "threads": 1}]})),
     "none of its 1 results is an edgeclf candidate"),
    (lambda p: _device_json(p, grid="c1-0000000000"), "measured on candidate grid c1-0000000000"),
    (lambda p: _device_json(p, variants=("float32",)), "no int8 figure for"),
    (lambda p: _device_json(p, threads=4), "no figure at --threads 1; it has 4"),
])
def test_device_json_errors_name_the_file_and_the_fix(tmp_path, make, message):
    path = tmp_path / "device.json"
    make(path)
    with pytest.raises(choose.ChoiceError, match=message):
        choose.read_device(path, CANDIDATES, "int8", 1)


def test_a_budget_nothing_fits_names_the_fastest_candidate_and_leaves_no_run(tmp_path):
    device = _device_json(tmp_path / "device.json")
    result = CliRunner().invoke(cli, ["build", "--data", "digits", "--latency-budget", "0.5", "--device", str(device),
                                      "--candidate-models", "tiny,cnn", "--candidate-sizes", "16,24",
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "the fastest is tiny_16 at 1.00 ms" in result.output and "at least 1 ms" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_missing_device_file_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["build", "--data", "digits", "--latency-budget", "5", "--device",
                                      str(tmp_path / "nowhere.json"), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "nowhere.json: not readable" in result.output and "Traceback" not in result.output


def test_candidates_then_bench_on_the_runtime_gives_a_device_json_the_build_reads(tmp_path):
    out = tmp_path / "candidates"
    result = CliRunner().invoke(cli, ["candidates", "--out", str(out), "--models", "tiny,cnn", "--sizes", "16,24",
                                      "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["grid"] == choose.grid_id(CANDIDATES) and len(manifest["candidates"]) == 4
    files = sorted(str(p) for p in out.glob("*.tflite"))
    assert len(files) == 8 and all(Model(f).metadata.name.startswith("edgeclf candidate ") for f in files)
    assert all(Model(out / c["files"]["int8"]).full_integer for c in manifest["candidates"])
    bench = CliRunner().invoke(cli, ["bench", *files, "--runs", "3", "--min-time", "0", "--warmup", "1", "--json"])
    assert bench.exit_code == 0, bench.output
    device = tmp_path / "device.json"
    device.write_text(bench.output)
    grid, timings = choose.read_device(device, CANDIDATES, "int8", 1)
    assert grid == manifest["grid"] and sorted(t.candidate.id for t in timings) == sorted(CRAFTED_MS)
    again = CliRunner().invoke(cli, ["candidates", "--out", str(out), "--models", "tiny,cnn", "--sizes", "16,24"])
    assert again.exit_code == 0 and "[1/4]" not in again.output  # the same grid's files are kept


def test_a_missing_data_folder_fails_before_any_candidate_is_timed(tmp_path):
    result = CliRunner().invoke(cli, ["build", "--data", str(tmp_path / "nope"), "--latency-budget", "5",
                                      "--candidate-models", "tiny", "--out", str(tmp_path / "runs")])
    assert result.exit_code != 0 and f"{tmp_path / 'nope'}: no such folder" in result.output
    assert "timing them" not in result.output and not (tmp_path / "runs").exists()
