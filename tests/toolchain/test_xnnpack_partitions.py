"""Every family edgeclf builds exports float32 and int8 graphs that XNNPACK runs in one partition.

One model holds every family side by side (each a tiny, random-weight instance on the same 32 px input,
their scores summed), converted once to float32 and once to int8: a single op XNNPACK declines in any
family shows as a second partition or an op outside between partitions, and the message names it.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime.delegation import read

SIZE = 32
FAMILIES = (  # (name, alpha, minimalistic): the narrowest of each, every family and variant edgeclf builds
    ("cnn", 1.0, False), ("resnet_mini", 1.0, False), ("mobilenet_v2", 0.35, False),
    ("mobilenet_v3_small", 0.35, False), ("mobilenet_v3_small", 0.35, True),
    ("mobilenet_v3_large", 0.35, False), ("mobilenet_v3_large", 0.35, True),
    ("efficientnet_b0", 1.0, False), ("resnet50", 1.0, False),  # resnet50 at 1/8 width: _narrow_resnet50
)


@pytest.fixture(scope="session")
def families():
    """(combined model, its members, calibration images): every family on one input, scores added."""
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.models import create_model, settle_batchnorm

    keras().utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    members = []
    for name, alpha, minimalistic in FAMILIES:
        config = ModelConfig(name=name, alpha=alpha, weights="none", minimalistic=minimalistic)
        member = _narrow_resnet50(config) if name == "resnet50" else create_model(config, 3, SIZE)
        member._name = f"{name}{'_minimalistic' if minimalistic else ''}"
        settle_batchnorm(member, images.astype(np.float32))  # the activation scales of a trained model
        members.append(member)
    layers = keras().layers
    pixels = layers.Input((SIZE, SIZE, 3), name="pixels")
    # each family's features, one dense layer each, summed, then one softmax: int8 SOFTMAX is not XNNPACK's,
    # so a softmax per family would split the graph where a real model has its softmax at the output
    scores = [layers.Dense(3, name=f"{member.name}_scores")(
        keras().Model(member.inputs, member.get_layer("classifier").input, name=f"{member.name}_features")(pixels))
        for member in members]
    combined = keras().Model(pixels, layers.Softmax(name="classifier")(layers.Add(name="sum")(scores)),
                             name="families")
    return combined, members, images


def _narrow_resnet50(config):
    """edgeclf's resnet50 (its normalization, Keras' ResNet50 blocks, its head) at 1/8 of the width: the same
    layers and ops; converting the 23.6M weights of the full width took a minute here, and width changes no op."""
    import dataclasses

    from edgeclf.toolchain._tf import keras  # noqa: F401 - sets TF_USE_LEGACY_KERAS before tf_keras loads
    from edgeclf.toolchain.models import APPLICATIONS, _from_application
    from tf_keras.src.applications import resnet  # ResNet and stack1, which ResNet50 is built from

    def make(x, size, config, weights):
        def stack_fn(x):
            x = resnet.stack1(x, 8, 3, stride1=1, name="conv2")
            x = resnet.stack1(x, 16, 4, name="conv3")
            x = resnet.stack1(x, 32, 6, name="conv4")
            return resnet.stack1(x, 64, 3, name="conv5")

        return resnet.ResNet(stack_fn, False, True, "resnet50", include_top=False, weights=None, input_tensor=x,
                             input_shape=(size, size, 3), pooling="avg")

    return _from_application(dataclasses.replace(APPLICATIONS["resnet50"], make=make), 3, SIZE, config)


@pytest.fixture(scope="session")
def exported(families) -> dict[str, bytes]:
    from edgeclf.toolchain.export import convert_float32, convert_int8

    combined, _, images = families
    return {"float32": convert_float32(combined), "int8": convert_int8(combined, images)}


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_every_family_runs_in_one_xnnpack_partition(exported, variant):
    delegation = read(exported[variant])
    assert delegation.one_partition, f"{variant}: {delegation.summary()}"
    assert set(delegation.outside) <= ({"QUANTIZE", "SOFTMAX"} if variant == "int8" else set()), delegation.summary()


def test_int8_graph_has_no_hard_swish_and_float32_keeps_it(exported, families):
    from edgeclf.runtime.flatbuffer import read_structure

    assert "HARD_SWISH" not in read_structure(exported["int8"]).op_counts()
    assert read_structure(exported["float32"]).op_counts().get("HARD_SWISH", 0) > 0  # XNNPACK's own float kernel


def test_rewritten_graph_computes_the_same_function(families):
    """The rewrite the int8 conversion traces gives Keras' outputs within 1e-5 (float32, every family)."""
    from edgeclf.toolchain.export import xnnpack_graph

    _, members, images = families
    pixels = images.astype(np.float32)
    for member in members:
        before = member(pixels, training=False).numpy()
        with xnnpack_graph(member, integer=True) as rewritten:
            after = member(pixels, training=False).numpy()
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-5, err_msg=member.name)
        if member.name in ("mobilenet_v3_small", "mobilenet_v3_large"):
            assert rewritten["hard_swish"] > 0, member.name
            # converted on its own, every hard-swish's 1/6 goes into the kernels after it
            assert rewritten["hard_swish_folded"] == rewritten["hard_swish"], (member.name, rewritten)
        if member.name == "efficientnet_b0":
            assert rewritten["reshape"] == 16
        assert member(pixels, training=False).numpy() == pytest.approx(before, abs=0)  # restored afterwards


def test_build_warns_about_an_int8_artifact_split_by_ops_outside_xnnpack():
    from edgeclf.toolchain.build import xnnpack_warnings

    def artifact(path, median, partitions, outside, edges, float_ops=0):
        return {"path": path, "float_ops": float_ops, "latency_ms": {"median": median},
                "xnnpack": {"xnnpack_partitions": partitions, "outside": outside, "outside_only_at_edges": edges}}

    artifacts = {"float32": artifact("model_float32.tflite", 0.8, 1, {}, True, float_ops=60),
                 "int8": artifact("model_int8.tflite", 3.1, 19, {"HARD_SWISH": 18, "QUANTIZE": 2}, False)}
    (warning,) = xnnpack_warnings(artifacts)
    assert warning.startswith("model_int8.tflite: XNNPACK runs it in 19 partitions; HARD_SWISH x18, QUANTIZE x2")
    assert "3.88x float32's median (3.100 vs 0.800 ms)" in warning
    artifacts["int8"] = artifact("model_int8.tflite", 0.9, 1, {"QUANTIZE": 2, "SOFTMAX": 1}, True)
    assert xnnpack_warnings(artifacts) == []  # input/output ops only: nothing split


def test_build_report_lists_each_artifacts_partitions(tiny_run, tiny_report):
    for artifact in tiny_report["artifacts"].values():
        assert artifact["xnnpack"]["xnnpack_partitions"] >= 1
    assert tiny_report["artifacts"]["int8"]["xnnpack"]["xnnpack_partitions"] == 1
    assert tiny_report["latency"]["xnnpack_warnings"] == []
    assert "| `model_int8.tflite` | 1 |" in (tiny_run / "report.md").read_text()


def test_hard_swish_is_found_in_a_model_loaded_from_a_file(families, tmp_path):
    """A model read back from .keras (--model PATH, a resumed build) spells its constants as keyword arguments."""
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.export import xnnpack_graph

    _, members, _ = families
    member = next(m for m in members if m.name == "mobilenet_v3_small")
    member.save(tmp_path / "model.keras")
    loaded = keras().models.load_model(tmp_path / "model.keras", compile=False)
    with xnnpack_graph(member, integer=True) as built, xnnpack_graph(loaded, integer=True) as read_back:
        pass
    assert read_back == built and built["hard_swish"] > 0


def test_folded_hard_swish_is_two_int8_ops_in_one_partition(families):
    """A MobileNetV3 converted on its own: each hard-swish is x * relu6(x + 3) (ADD, MUL) with its 1/6 in the
    next kernels, one XNNPACK partition. (In `families` the members are nested, so their hard-swishes keep the
    three-op form: both forms are checked.)"""
    from edgeclf.runtime.flatbuffer import read_structure
    from edgeclf.toolchain.export import convert_float32, convert_int8, xnnpack_graph

    _, members, images = families
    member = next(m for m in members if m.name == "mobilenet_v3_small")
    with xnnpack_graph(member, integer=True) as rewritten:
        pass
    content = convert_int8(member, images)
    ops, float_ops = read_structure(content).op_counts(), read_structure(convert_float32(member)).op_counts()
    # float32 keeps one HARD_SWISH each; int8 has one ADD and one MUL in its place (three-op form: two MULs)
    assert float_ops["HARD_SWISH"] == rewritten["hard_swish"] and "HARD_SWISH" not in ops
    assert ops["MUL"] - float_ops["MUL"] == ops["ADD"] - float_ops["ADD"] == rewritten["hard_swish"], (ops, float_ops)
    delegation = read(content)
    assert delegation.one_partition and set(delegation.outside) <= {"QUANTIZE", "SOFTMAX"}, delegation.summary()


def _invoke(content: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for image in images:
        interpreter.set_tensor(source["index"], image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(result["index"])[0].copy())
    return np.array(outputs)


@pytest.mark.parametrize("pixel_range", [(0, 256), (20, 200)])
def test_uint8_input_is_converted_inside_xnnpack_with_the_same_outputs(pixel_range):
    """The int8 file's uint8 -> int8 input conversion is DEQUANTIZE + QUANTIZE, both run by XNNPACK, where the
    requantization is an exact shift (calibration saw pixels 0 and 255); the outputs are the converter's own
    graph's bit for bit, on images holding every pixel value. Calibrated on a narrower range the shift is not
    exact, and the converter's QUANTIZE stays."""
    from edgeclf.runtime.flatbuffer import read_structure
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.export import (_convert, _input_conversion_in_xnnpack, _int8_converter,
                                          _raw_pixel_input)
    from edgeclf.toolchain.models import create_model

    keras().utils.set_random_seed(0)
    model = create_model(ModelConfig(name="tiny", weights="none"), 3, SIZE)
    rng = np.random.default_rng(0)
    calibration = rng.integers(*pixel_range, (8, SIZE, SIZE, 3), dtype=np.uint8)
    converted = _raw_pixel_input(_convert(model, _int8_converter(model, calibration)))
    rewritten = _input_conversion_in_xnnpack(converted)
    every_value = np.stack([np.roll(np.arange(SIZE * SIZE * 3) % 256, shift).astype(np.uint8).reshape(SIZE, SIZE, 3)
                            for shift in range(0, 256, 37)])
    np.testing.assert_array_equal(_invoke(rewritten, every_value), _invoke(converted, every_value))
    before, after = read(converted), read(rewritten)
    assert before.outside.get("QUANTIZE") == 2 and before.one_partition, before.summary()
    if pixel_range == (0, 256):
        assert read_structure(rewritten).op_counts()["DEQUANTIZE"] == 1
        assert after.one_partition and after.outside == {"QUANTIZE": 1, "SOFTMAX": 1}, after.summary()  # the output's
        assert read_structure(rewritten).float_ops() == []
    else:
        assert rewritten == converted
