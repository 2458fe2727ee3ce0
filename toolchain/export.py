"""Keras -> .tflite for every artifact variant: float32, full-integer int8, float16 and dynamic range.

VARIANTS is the single table of what can be exported; the build and the report follow it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edgeclf.runtime.flatbuffer import read_structure
from edgeclf.toolchain._tf import tf

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """A conversion that did not produce the artifact asked for."""


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    full_integer: bool  # gated by --max-drop; must contain no float op
    needs_calibration: bool


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("float32", "float32 weights and compute", False, False),
    Variant("int8", "full integer: int8 weights and activations, calibrated", True, True),
    Variant("float16", "float16 weights, float32 compute", False, False),
    Variant("dynamic", "int8 weights, float32 activations (dynamic range)", False, False),
)}


def convert_float32(model: Any) -> bytes:
    return tf().lite.TFLiteConverter.from_keras_model(model).convert()


def convert_float16(model: Any) -> bytes:
    tf_ = tf()
    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf_.float16]
    return converter.convert()


def convert_dynamic(model: Any) -> bytes:
    tf_ = tf()
    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    return converter.convert()


def convert_int8(model: Any, calibration_images: np.ndarray, io: str = "uint8", per_channel: bool = True) -> bytes:
    """Full-integer quantization (TFLITE_BUILTINS_INT8) calibrated on RGB uint8 images.

    Args:
        io: the input/output type. uint8 (default): input scale 1, zero point 0, so a camera
            frame goes in with no arithmetic, and uint8 probabilities (scale 1/256) come out.
            int8: the converter's int8 I/O. float32: float I/O around an integer model.
        per_channel: one scale per output channel of each kernel (False: per tensor).

    Raises:
        ExportError: a float op remains, or the input cannot take raw pixels.
    """
    tf_ = tf()

    def representative() -> Iterator[list[np.ndarray]]:
        for image in calibration_images:
            yield [image[None].astype(np.float32)]

    converter = tf_.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"uint8": tf_.uint8, "int8": tf_.int8, "float32": tf_.float32}[io]
    converter.inference_input_type = converter.inference_output_type = io_type
    if not per_channel:
        converter._experimental_disable_per_channel = True  # the converter's only switch for this
    content = converter.convert()
    if io == "uint8":
        content = _raw_pixel_input(content)
    float_ops = read_structure(content).float_ops()
    if float_ops:
        raise ExportError(f"full-integer conversion left float32 ops: {sorted(set(float_ops))}. "
                          "These layers have no int8 kernel in TFLite; replace them in the model.")
    return content


CONVERTERS: dict[str, Callable[..., bytes]] = {
    "float32": convert_float32, "int8": convert_int8, "float16": convert_float16, "dynamic": convert_dynamic,
}


def _raw_pixel_input(content: bytes) -> bytes:
    """Sets the uint8 input to scale 1, zero point 0 when calibration saw a narrower pixel range.

    The converter takes the input range from the calibration images; if they never hit both
    0 and 255 the input scale is not 1. The input feeds a QUANTIZE op that requantizes to the
    calibrated int8 range, so declaring the true 0-255 range there is exact.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    input_index = graph.inputs[0]
    quantization = graph.tensors[input_index].quantization
    if list(quantization.scale) == [1.0] and list(quantization.zeroPoint) == [0]:
        return content
    consumers = [op for op in graph.operators if input_index in list(op.inputs)]
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
             for op in consumers]
    quantize = flatbuffer_utils.schema_fb.BuiltinOperator.QUANTIZE
    if not consumers or any(code != quantize for code in codes):
        raise ExportError("the int8 model's input does not feed a QUANTIZE op, so it cannot take raw pixels "
                          f"(input scale {list(quantization.scale)}, zero point {list(quantization.zeroPoint)}).")
    log.debug("input quantization %s/%s -> 1.0/0", list(quantization.scale), list(quantization.zeroPoint))
    quantization.scale = [1.0]
    quantization.zeroPoint = [0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
