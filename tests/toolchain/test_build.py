"""The build pipeline end to end on tiny/digits: artifacts, report, contracts between stages."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgeclf.runtime.cpu import cpu_info
from edgeclf.runtime.folder import load, scan
from edgeclf.runtime.model import Model
from edgeclf.toolchain import build as build_module


def _val_images(report: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    folder = scan(os.path.join(report["dataset"]["root"], "val"))
    loaded = load(folder.files, size)
    return loaded.images, loaded.labels


def test_stage_table_order():
    assert [name for name, _ in build_module.STAGES] == [
        "data", "model", "train", "prune", "quantize", "export", "evaluate", "report"]


def test_run_folder_contents(tiny_run, tiny_config):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "labels.txt", "env.json", "keras", "model_float32.tflite", "model_int8.tflite",
            "report.json", "report.md", "report.html", "confusion_float32.png", "confusion_int8.png"} <= names
    assert {p.name for p in (tiny_run / "keras").iterdir()} == {"model.keras", "pruned.keras"}
    assert (tiny_run / "model_int8_qat.tflite").is_file()
    assert (tiny_run / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    latest = tiny_run.parent / "latest"
    assert latest.is_symlink() and latest.resolve() == tiny_run.resolve()
    assert not [p for p in tiny_run.parent.iterdir() if p.name.startswith(".tmp-")]
    assert tiny_run.name.endswith("-tiny-32")
    env = json.loads((tiny_run / "env.json").read_text())
    assert env["seed"] == 0 and "tensorflow" in env["versions"]


def test_report_schema(tiny_report):
    assert tiny_report["schema"] == 1
    dataset = tiny_report["dataset"]
    assert dataset["train"] + dataset["val"] == 1797 and dataset["classes"] == [str(i) for i in range(10)]
    assert dataset["skipped"] == []
    assert list(tiny_report["artifacts"]) == ["float32", "int8", "int8_qat"]
    for name in ("float32", "int8", "int8_qat"):
        artifact = tiny_report["artifacts"][name]
        assert {"path", "bytes", "gzip_bytes", "accuracy", "agreement_with_float32", "latency_ms", "input", "ops"} <= set(artifact)
        assert artifact["latency_ms"]["median"] > 0 and artifact["latency_ms"]["p90"] >= artifact["latency_ms"]["median"]
        assert 0 < artifact["gzip_bytes"] < artifact["bytes"]
    calibration = tiny_report["calibration"]
    assert calibration["size"] == 100 and calibration["seed"] == 0 and sum(calibration["per_class"].values()) == 100
    assert list(tiny_report["stages"]) == ["data", "model", "train", "prune", "quantize", "export", "evaluate"]


def test_report_says_what_cpu_the_latencies_are_from_and_what_int8_means_there(tiny_run, tiny_report):
    latency = tiny_report["latency"]
    cpu = cpu_info()
    assert latency["threads"] == 1 and latency["cpu"]["features"] == list(cpu.features)
    assert latency["cpu"]["int8_dot_product"] is cpu.int8_dot_product
    notes = latency["int8_notes"]
    assert [n.split(" vs ")[0] for n in notes] == ["model_int8.tflite", "model_int8_qat.tflite"]
    for note, name in zip(notes, ("int8", "int8_qat")):
        ratio = tiny_report["artifacts"][name]["latency_ms"]["median"] / tiny_report["artifacts"]["float32"]["latency_ms"]["median"]
        assert f"int8 takes {ratio:.2f}x float32's median here" in note
        if not cpu.int8_dot_product and ratio >= 1:
            assert "no int8 dot-product instructions" in note
    assert f"Latency: 1 thread on {cpu.name}" in (tiny_run / "report.md").read_text()


def test_float32_tflite_matches_keras(tiny_run, tiny_report):
    from edgeclf.toolchain._tf import keras

    keras_model = keras().models.load_model(tiny_run / "keras" / "pruned.keras")
    images, _ = _val_images(tiny_report, 32)
    expected = keras_model.predict(images[:64].astype(np.float32), verbose=0)
    actual = Model(tiny_run / "model_float32.tflite").predict(images[:64])
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_int8_is_full_integer_with_raw_pixel_input(tiny_run, tiny_report):
    model = Model(tiny_run / "model_int8.tflite")
    assert (model.input.dtype, model.input.scale, model.input.zero_point) == ("uint8", 1.0, 0)
    assert model.structure.float_ops() == []
    assert tiny_report["artifacts"]["int8"]["input"] == {**model.input.as_dict()}
    assert tiny_report["artifacts"]["int8"]["float_ops"] == 0


def test_int8_agrees_with_float32(tiny_run, tiny_report):
    images, labels = _val_images(tiny_report, 32)
    float_pred = Model(tiny_run / "model_float32.tflite").predict(images).argmax(1)
    int8_pred = Model(tiny_run / "model_int8.tflite").predict(images).argmax(1)
    agreement = float(np.mean(float_pred == int8_pred))
    assert agreement >= 0.9
    assert tiny_report["artifacts"]["int8"]["agreement_with_float32"] == pytest.approx(agreement)
    assert tiny_report["artifacts"]["int8"]["accuracy"] == pytest.approx(float(np.mean(int8_pred == labels)))


def test_pruning_reaches_the_target_sparsity(tiny_run, tiny_report):
    sparsity = tiny_report["sparsity"]
    assert abs(sparsity["overall"] - 0.5) <= 0.02
    assert sparsity["layers"]["conv2"]["pruned"] and abs(sparsity["layers"]["conv2"]["sparsity"] - 0.5) <= 0.02
    assert sparsity["dense_layers"] == ["conv1", "classifier"]
    assert sparsity["layers"]["conv1"]["sparsity"] < 0.05
    # The zeros survive export: measured on the .tflite file itself.
    assert Model(tiny_run / "model_float32.tflite").structure.weight_sparsity() > 0.3
    assert "does not speed up inference" in (tiny_run / "report.md").read_text()


def test_failed_build_leaves_no_finished_folder_and_keeps_earlier_runs(tiny_run, tiny_config, monkeypatch):
    runs = tiny_run.parent
    before = sorted(p.name for p in runs.iterdir() if p.name != ".resume")
    latest_before = os.readlink(runs / "latest")

    def broken_export(config, ctx):
        (ctx.run_dir / "model_float32.tflite").write_bytes(b"half")
        raise RuntimeError("disk on fire")

    table = tuple((name, broken_export if name == "export" else stage) for name, stage in build_module.STAGES)
    monkeypatch.setattr(build_module, "STAGES", table)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_module.build(tiny_config.override({"train.epochs": 1, "prune.sparsity": 0.0, "quantize.int8": False}))
    assert sorted(p.name for p in runs.iterdir() if p.name != ".resume") == before  # .resume: for --resume
    assert os.readlink(runs / "latest") == latest_before
    assert (tiny_run / "report.json").is_file()


def test_report_html_and_confusion_pngs(tiny_run, tiny_report):
    from tests.browser import CHROMIUM, rendered

    for variant in tiny_report["artifacts"]:
        assert (tiny_run / f"confusion_{variant}.png").read_bytes()[:4] == b"\x89PNG"
        assert isinstance(tiny_report["artifacts"][variant]["flips_vs_float32"], list)
    page = tiny_run / "report.html"
    assert "Confusion matrices" in page.read_text()
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed: `make install-chromium`")
    shown = rendered(page)
    assert shown["loaded"] == shown["img_tags"] >= 2 and shown["charts"] >= 2  # tests/toolchain/test_report_html.py: all


def test_qat_keeps_the_pruned_zeros_and_is_full_integer(tiny_run, tiny_report):
    qat = Model(tiny_run / "model_int8_qat.tflite")
    assert qat.structure.float_ops() == [] and (qat.input.dtype, qat.input.scale, qat.input.zero_point) == ("uint8", 1.0, 0)
    pruned = Model(tiny_run / "model_float32.tflite").structure.weight_sparsity()
    assert abs(qat.structure.weight_sparsity() - pruned) <= 0.02  # measured on the exported weights
    assert tiny_report["history"]["qat"]["loss"] and "int8_qat" in tiny_report["gate"]["drop_points"]
    # No layer collapsed: the converter once folded the input rescaling into the first conv after QAT
    # had fixed its scale, and every first-layer weight rounded to zero.
    assert all(float(np.mean(w == 0)) < 0.9 for w in qat.structure.weights.values())
