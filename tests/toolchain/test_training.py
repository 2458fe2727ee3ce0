"""Models and training: two-stage fine-tuning, model files, schedules, resume, determinism, tf.distribute."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.toolchain.config import BuildConfig, ModelConfig
from edgeclf.toolchain.models import ModelBuildError, base_layers, create_model, unfreeze_top


def _folder(root: Path, per_class: int = 16, classes: int = 2, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = np.full((size, size, 3), 40 + 150 * c, np.uint8)  # classes differ in brightness: learnable
            image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / f"class{c}" / f"{i}.png"), image)
    return root


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory) -> Path:
    """A MobileNetV2 0.35 weights file standing in for ImageNet's (no download here)."""
    from edgeclf.toolchain._tf import keras

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_0.35_32.h5"
    keras().applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    return path


def test_two_stage_fine_tuning_freezes_then_unfreezes_the_top_layers(mobilenet_weights):
    from edgeclf.toolchain._tf import keras

    model = create_model(ModelConfig(name="mobilenet_v2", alpha=0.35, weights=str(mobilenet_weights)), 5, 32)
    classifier = model.get_layer("classifier")
    assert _trainable(model) == 1280 * 5 + 5  # stage 1: only the new head
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in classifier.trainable_weights}
    top = base_layers(model)[-20:]
    unfrozen = unfreeze_top(model, 20)
    norm = keras().layers.BatchNormalization
    expected = [layer for layer in top if not isinstance(layer, norm)]
    assert unfrozen == len(expected)
    assert _trainable(model) == 1280 * 5 + 5 + sum(_trainable(layer) for layer in expected)
    assert all(not layer.trainable for layer in top if isinstance(layer, norm))  # BatchNorm stays in inference mode
    assert all(not layer.trainable for layer in base_layers(model)[:-20])


def test_the_head_on_the_frozen_base_features_computes_what_the_whole_model_does(mobilenet_weights):
    from edgeclf.toolchain.frozen import split_head

    model = create_model(ModelConfig(name="mobilenet_v2", alpha=0.35, weights=str(mobilenet_weights)), 5, 32)
    extractor, head = split_head(model)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(head(extractor(pixels)).numpy(), model(pixels).numpy(), atol=1e-6)
    assert {id(w) for w in head.trainable_weights} == {id(w) for w in model.trainable_weights}  # the model's own head


@pytest.mark.parametrize("augment, mode", [("none", "once"), ("light", "per epoch")])
def test_pretrained_build_runs_two_stages_with_a_smaller_learning_rate(tmp_path, mobilenet_weights, augment, mode):
    from edgeclf.toolchain.build import build

    config = BuildConfig().override({
        "data.source": str(_folder(tmp_path / "data")), "data.augment": augment, "model.name": "mobilenet_v2",
        "model.alpha": 0.35, "model.size": 32, "model.weights": str(mobilenet_weights), "train.epochs": 1,
        "train.fine_tune_epochs": 1, "train.fine_tune_layers": 10, "train.batch_size": 8,
        "export.out": str(tmp_path / "runs")})
    lines = []
    run = build(config, log=lines.append).run_dir
    report = json.loads((run / "report.json").read_text())
    history = report["history"]["train"]
    assert history["fine_tune_start"] == [1.0] and len(history["loss"]) == 2
    assert history["lr"][1] == pytest.approx(history["lr"][0] / 20)
    assert report["training"]["stage1_mode"] == mode and report["training"]["stage1"] in (run / "report.md").read_text()
    assert any("stage 2:" in line and "BatchNorm kept frozen" in line for line in lines)
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG" and (run / "checkpoints" / "best.keras").is_file()
    assert not (tmp_path / "runs" / ".resume").exists()  # a finished build leaves nothing to resume


@pytest.mark.parametrize("alpha, size, tag", [(0.35, 96, "0.35_96"), (0.5, 128, "0.5_128"), (1.0, 100, "1.0_224"),
                                              (1.4, 224, "1.4_224")])
def test_offline_imagenet_names_the_file_keras_looks_for(tmp_path, monkeypatch, offline, alpha, size, tag):
    """The named file is the one Keras tried to download: a size it has no weights for falls back to 224."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ModelBuildError) as error:
        create_model(ModelConfig(name="mobilenet_v2", alpha=alpha, weights="imagenet"), 3, size)
    expected = tmp_path / "keras" / "models" / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{tag}_no_top.h5"
    assert str(expected) in str(error.value) and "--weights PATH" in str(error.value)
    from edgeclf.toolchain._tf import keras

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached weights: Keras' own download fails and names its file
    with pytest.raises(Exception) as keras_error:
        keras().applications.MobileNetV2(alpha=alpha, include_top=False, weights="imagenet", input_shape=(size, size, 3))
    assert expected.name in str(keras_error.value)


def test_imagenet_weights_placed_where_the_message_says_build_offline(tmp_path, monkeypatch, offline):
    from edgeclf.toolchain._tf import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    saved = {}
    for size, tag in ((96, "0.35_96"), (32, "0.35_224")):  # 32: Keras has no such size and loads its 224 file
        path = tmp_path / "keras" / "models" / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{tag}_no_top.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = keras().applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(size, size, 3))
        base.save_weights(path)
        saved[size] = base.get_layer("Conv1").get_weights()[0]
    model = create_model(ModelConfig(name="mobilenet_v2", alpha=0.35, weights="imagenet"), 3, 96)
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0], saved[96])
    result = CliRunner().invoke(cli, ["build", "--data", str(_folder(tmp_path / "data", per_class=20)), "--model",
                                      "mobilenet_v2", "--alpha", "0.35", "--size", "32", "--weights", "imagenet",
                                      "--epochs", "1", "--fine-tune-epochs", "1", "--out", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    trained = keras().models.load_model(tmp_path / "runs" / "latest" / "keras" / "model.keras", compile=False)
    np.testing.assert_array_equal(trained.get_layer("Conv1").get_weights()[0], saved[32])  # frozen in both stages


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_keras_model_file_is_built_with_a_new_head_and_input_scaling(tmp_path, suffix):
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.build import build

    layers = keras().layers
    inputs = layers.Input((24, 24, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    path = tmp_path / f"mine{suffix}"
    keras().Model(inputs, layers.Dense(7, activation="softmax")(x)).save(path)  # trained on [0, 1], 7 classes
    model = create_model(ModelConfig(name=str(path)), 2, 24)
    assert model.output_shape == (None, 2) and model.layers[1].name == "normalize"
    config = BuildConfig().override({"data.source": str(_folder(tmp_path / "data", size=24)), "model.name": str(path),
                                     "train.epochs": 1, "train.batch_size": 8, "export.out": str(tmp_path / "runs")})
    run = build(config).run_dir
    assert (run / "model_float32.tflite").is_file() and run.name.endswith("-mine-24")


def test_a_model_file_whose_input_is_not_an_image_is_refused(tmp_path):
    from edgeclf.toolchain._tf import keras

    layers = keras().layers
    inputs = layers.Input((10,))
    path = tmp_path / "tabular.h5"
    keras().Model(inputs, layers.Dense(2)(inputs)).save(path)
    with pytest.raises(ModelBuildError, match=r"tabular\.h5: its input is \(None, 10\); edgeclf needs one image input"):
        create_model(ModelConfig(name=str(path)), 2, 24)


def test_resnet_mini_has_residual_blocks():
    model = create_model(ModelConfig(name="resnet_mini"), 10, 32)
    adds = [layer for layer in model.layers if layer.__class__.__name__ == "Add"]
    assert len(adds) == 6 and model.output_shape == (None, 10)
    assert model.get_layer("stage3_block1_project").strides == (2, 2)


def test_schedules_and_label_smoothing():
    from edgeclf.toolchain._tf import tf
    from edgeclf.toolchain.train import _loss, _schedule

    step = _schedule("step", 0.1, 8)
    assert [round(step(e), 6) for e in (0, 3, 4, 5, 6, 7)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    cosine = _schedule("cosine", 0.1, 10)
    assert cosine(0) == pytest.approx(0.1) and cosine(5) == pytest.approx(0.05)
    y_pred = tf().constant([[0.7, 0.2, 0.1]])
    smoothed = float(_loss(0.3)(tf().constant([0]), y_pred)[0])
    target = np.array([0.8, 0.1, 0.1])  # 1 - 0.3 + 0.3 / 3, then 0.3 / 3
    assert smoothed == pytest.approx(float(-(target * np.log([0.7, 0.2, 0.1])).sum()), rel=1e-5)


def test_training_batches_repeat_with_each_epoch_one_pass_in_a_new_order():
    """fit() hands Keras one repeated iterator (no teardown between epochs): every epoch is still exactly
    one pass over the images, the last short batch included, and the shuffle differs between epochs."""
    from edgeclf.toolchain.pipeline import make_dataset
    from edgeclf.toolchain.train import _one_iterator

    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    train, steps = _one_iterator(make_dataset(images, np.arange(10), 4, True, seed=0))
    assert steps == 3
    batches = [x[:, 0, 0, 0].numpy().astype(int).tolist() for x, _ in train.take(3 * steps)]
    epochs = [sum(batches[e * steps:(e + 1) * steps], []) for e in range(3)]
    assert [sorted(epoch) for epoch in epochs] == [list(range(10))] * 3
    assert [len(b) for b in batches[:steps]] == [4, 4, 2] and len({tuple(e) for e in epochs}) == 3


def _tiny_model_and_data() -> tuple:
    """A two-class dense model on 16 random 8 x 8 images: (model, training batches, validation batches)."""
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.pipeline import make_dataset

    k = keras()
    images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), np.uint8)
    model = k.Sequential([k.Input((8, 8, 3)), k.layers.Flatten(), k.layers.Dense(2, activation="softmax")])
    return (model, make_dataset(images, np.arange(16) % 2, 8, True, seed=0),
            make_dataset(images, np.arange(16) % 2, 8, False, seed=0))


def _tiny_fit(backup: Path, epochs: int, callbacks: list) -> dict:
    from edgeclf.toolchain.train import FitOptions, fit

    model, train, val = _tiny_model_and_data()
    return fit(model, train, val, epochs, 1e-3, lambda _: None, callbacks=callbacks, early_stopping=False,
               options=FitOptions(backup=backup))


def test_resume_point_writes_do_not_hold_up_training_and_the_newest_is_on_disk_after_fit(tmp_path, monkeypatch):
    """A write that stalls (an fsync behind another process' writes) must not stop the epochs: the first
    write here waits until training has finished its fourth epoch. Snapshots that arrive meanwhile replace
    each other, and fit returns only once the newest (epoch 5) is on disk."""
    import threading

    from edgeclf.toolchain import train
    from edgeclf.toolchain._tf import keras

    fourth_epoch_done, states, real = threading.Event(), [], train.write_atomically

    def stalling_disk(target: Path, content: bytes) -> None:
        if target.name == train.RESUME_WEIGHTS and not states:
            assert fourth_epoch_done.wait(timeout=60), "training waited for the resume point's write"
        if target.name == train.RESUME_STATE:
            states.append(json.loads(content)["epoch"])
        real(target, content)

    class FourthEpoch(keras().callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 3:
                fourth_epoch_done.set()

    monkeypatch.setattr(train, "write_atomically", stalling_disk)
    history = _tiny_fit(tmp_path, 5, [FourthEpoch()])
    assert len(history["loss"]) == 5
    assert states[0] == 1 and states[-1] == 5 and 2 not in states and states == sorted(states)
    assert json.loads((tmp_path / train.RESUME_STATE).read_text())["epoch"] == 5
    with np.load(tmp_path / train.RESUME_WEIGHTS) as saved:
        assert len(saved.files) == 2  # the Dense layer's kernel and bias


def test_a_resume_point_that_cannot_be_written_fails_the_fit(tmp_path, monkeypatch):
    import errno

    from edgeclf.toolchain import train

    def full_disk(target: Path, content: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(train, "write_atomically", full_disk)
    with pytest.raises(OSError, match="No space left") as error:
        _tiny_fit(tmp_path, 3, [])
    assert error.value.errno == errno.ENOSPC


def test_same_seed_and_data_give_the_same_metrics(tmp_path):
    from edgeclf.toolchain.build import build

    data = _folder(tmp_path / "data")
    reports = []
    for name in ("a", "b"):
        config = BuildConfig().override({"data.source": str(data), "model.name": "tiny", "train.epochs": 3,
                                         "train.batch_size": 8, "data.augment": "light", "seed": 3,
                                         "export.out": str(tmp_path / name)})
        reports.append(json.loads((build(config).run_dir / "report.json").read_text()))
    histories = [{k: v for k, v in r["history"]["train"].items() if k != "seconds"} for r in reports]
    assert histories[0] == histories[1] and len(histories[0]["loss"]) == 3
    assert reports[0]["artifacts"]["float32"]["accuracy"] == reports[1]["artifacts"]["float32"]["accuracy"]


def test_mixed_precision_is_refused_on_a_cpu(tmp_path):
    from edgeclf.toolchain._tf import tf

    if tf().config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: mixed precision is allowed here")
    result = CliRunner().invoke(cli, ["build", "--model", "tiny", "--mixed-precision", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "no GPU" in result.output and "slower" in result.output
    assert not (tmp_path / "runs").exists()


def _edgeclf(args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeclf", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_resume_continues_an_interrupted_build_from_its_last_checkpoint(tmp_path):
    data, out = _folder(tmp_path / "data", per_class=64), tmp_path / "runs"
    args = ["build", "--data", str(data), "--model", "tiny", "--epochs", "40", "--patience", "40",
            "--batch-size", "8", "--out", str(out)]
    first = _edgeclf(args)
    deadline = time.monotonic() + 120
    while not list((out / ".resume").rglob("state.json")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more epochs
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # killed: no finished run
    second = _edgeclf([*args, "--resume"])
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert "resuming from the last checkpoint" in output
    epochs = [int(line.split("epoch ")[1].split("/")[0]) for line in output.splitlines() if " epoch " in line]
    assert epochs[0] > 1 and epochs[-1] <= 40  # it went on where the killed run stopped
    assert (out / "latest" / "model_float32.tflite").is_file() and not (out / ".resume").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_workers_train_together_and_write_the_usual_run(tmp_path):
    data, out = _folder(tmp_path / "data"), tmp_path / "runs"
    hosts = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    workers = [_edgeclf(["build", "--data", str(data), "--model", "tiny", "--epochs", "2", "--batch-size", "8",
                         "--strategy", "multiworker", "--out", str(out)],
                        env={"TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                                      "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    chief, other = out / "latest", out / ".worker-1" / "latest"
    layout = {"model_float32.tflite", "report.json", "report.md", "report.html", "curves.png", "labels.txt",
              "config.yaml", "dataset_split.json", "confusion_float32.png"}
    assert layout <= {p.name for p in chief.iterdir()} and layout <= {p.name for p in other.iterdir()}
    histories = [{k: v for k, v in json.loads((run / "report.json").read_text())["history"]["train"].items()
                  if k != "seconds"} for run in (chief, other)]
    assert histories[0] == histories[1]  # one model trained together: the same metrics on both workers


def test_prune_for_xnnpack_prunes_only_1x1_convs_and_exports_them_sparse(tmp_path):
    from edgeclf.toolchain.build import build

    config = BuildConfig().override({
        "data.source": str(_folder(tmp_path / "data")), "model.name": "mobilenet_v2", "model.alpha": 0.35,
        "model.size": 32, "model.weights": "none", "train.epochs": 1, "train.batch_size": 8,
        "prune.for_backend": "xnnpack", "prune.epochs": 1, "export.out": str(tmp_path / "runs")})
    run = build(config).run_dir
    report = json.loads((run / "report.json").read_text())
    xnnpack, layers = report["xnnpack"], report["sparsity"]["layers"]
    assert xnnpack["pattern_ok"] and xnnpack["pointwise_layers"] >= 10
    assert xnnpack["eligible_layers"] == xnnpack["pointwise_layers"]
    assert all(info["sparsity"] >= 2 / 3 for info in xnnpack["layers"].values())
    assert all(info["sparsity"] < 0.05 for name, info in layers.items() if name not in xnnpack["layers"])
    sparse = report["artifacts"]["float32_sparse"]
    assert sparse["ops"].get("DENSIFY", 0) >= xnnpack["eligible_layers"] // 2  # weights stored sparse
    assert abs(sparse["agreement_with_float32"] - 1.0) < 1e-9  # same model, another encoding
    note = xnnpack["platform_note"]
    assert ("disables sparse inference" in note) == (not xnnpack["sparse_inference_on_this_machine"])
    assert "XNNPACK sparse inference" in (run / "report.md").read_text()


@pytest.mark.parametrize("steps, momentum", [(2, 0.5), (10, 0.6), (38, 1 - 4 / 38), (400, 0.99), (5000, 0.99)])
def test_batchnorm_momentum_follows_the_steps_per_epoch(steps, momentum):
    """A small folder's moving statistics must keep up with the weights, or validation sits at chance
    for the first epochs; a large folder keeps the slow average."""
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.models import follow_steps_with_batchnorm

    for name in ("cnn", "resnet_mini", "mobilenet_v2"):
        model = create_model(ModelConfig(name=name, alpha=0.35, weights="none"), 3, 32)
        assert follow_steps_with_batchnorm(model, steps) == pytest.approx(momentum)
        norms = [layer for layer in model.submodules if isinstance(layer, keras().layers.BatchNormalization)]
        assert norms and all(layer.momentum == pytest.approx(momentum) for layer in norms)
    assert follow_steps_with_batchnorm(create_model(ModelConfig(name="tiny"), 3, 32), steps) is None  # no BatchNorm


def test_the_training_step_is_traced_once():
    """The optimizer's variables exist before the first step: a tf.function that creates variables on its first
    call is traced a second time, and the training step is the costliest trace of a short run."""
    from edgeclf.toolchain.train import fit

    model, train, val = _tiny_model_and_data()
    fit(model, train, val, 2, 1e-3, lambda _: None)
    assert model.train_function.experimental_get_tracing_count() == 1
