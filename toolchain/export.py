"""Keras -> .tflite for every artifact variant: float32, full-integer int8, float16 and dynamic range.

VARIANTS (at the end) is the single table of what can be exported: one row per artifact holds how it is
converted, what it needs, whether --max-drop gates it and when a build selects it. The build, the
quality gate and the metadata follow it; adding a variant is adding a row.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edgeclf.runtime.flatbuffer import read_structure
from edgeclf.toolchain._tf import keras, tf

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """A conversion that did not produce the artifact asked for."""


def _is_hard_swish(layer: Any) -> bool:
    """Whether `layer` is Keras' hard-swish: Multiply()([x, ReLU(6)(x + 3) * (1 / 6)]), as MobileNetV3 builds it."""
    layers = keras().layers
    if not isinstance(layer, layers.Multiply) or len(layer._inbound_nodes) != 1:
        return False
    inputs = layer._inbound_nodes[0].input_tensors
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        return False
    x, gate = inputs

    def producer(tensor: Any, kind: str, constant: float | None = None) -> Any:
        """The KerasTensor feeding the layer that made `tensor`, if that layer is `kind` (with `constant`)."""
        made_by = getattr(tensor, "_keras_history", None)
        if made_by is None or len(made_by.layer._inbound_nodes) != 1:
            return None
        node = made_by.layer._inbound_nodes[0]
        if kind == "relu6":
            ok = isinstance(made_by.layer, layers.ReLU) and float(made_by.layer.max_value or 0) == 6.0
            return node.input_tensors if ok and not isinstance(node.input_tensors, list) else None
        # built in this process: (tensor, constant); loaded from a file: (tensor,) and y=constant
        args, kwargs = node.call_args, node.call_kwargs
        value = args[1] if len(args) == 2 else kwargs.get("y") if len(args) == 1 else None
        ok = (getattr(made_by.layer, "symbol", None) == kind and isinstance(value, (int, float))
              and abs(value - constant) < 1e-7)
        return args[0] if ok else None

    shifted = producer(producer(producer(gate, "math.multiply", 1 / 6), "relu6"), "__operators__.add", 3.0)
    return shifted is x


def _hard_swish_for_xnnpack(inputs: list) -> Any:
    """x * relu6(x + 3) / 6 as (x * 1/6) * relu6(x + 3): the same function (float32 within a rounding step),
    in an order the converter does not fuse back into HARD_SWISH, which XNNPACK takes in float32 only.
    In int8 it becomes MUL, ADD (RELU6 fused) and MUL, all three run by XNNPACK."""
    x = inputs[0]
    return (x * (1 / 6)) * tf().nn.relu6(x + 3.0)


def _hard_swish_times_six(inputs: list) -> Any:
    """6 * hard-swish(x) as x * relu6(x + 3): two int8 ops (ADD with RELU6 fused, MUL), for a hard-swish
    whose 1/6 `_fold_plan` moves into the kernels of the layers that read it."""
    x = inputs[0]
    return x * tf().nn.relu6(x + 3.0)


def _fold_plan(model: Any, layer: Any) -> list[tuple[Any, str]] | None:
    """Where the 1/6 of hard-swish `layer` can go instead: [(layer, kernel attribute)] of every Conv2D,
    DepthwiseConv2D or Dense that its output reaches through layers that commute with a positive scale
    (padding, pooling, dropout, reshape, and a Multiply by an unscaled tensor, MobileNetV3's squeeze-excite).
    None when the output reaches anything else (an Add, BatchNorm, a bounded activation, the model's output)
    or a layer outside `model`'s own graph: then the hard-swish keeps its 1/6 (_hard_swish_for_xnnpack)."""
    layers = keras().layers
    kernels = {layers.Conv2D: "kernel", layers.DepthwiseConv2D: "depthwise_kernel", layers.Dense: "kernel"}
    scaling = (layers.ZeroPadding2D, layers.GlobalAveragePooling2D, layers.Dropout, layers.Reshape,
               layers.Flatten, layers.MaxPooling2D, layers.AveragePooling2D)
    own = {id(member) for member in model.layers}
    outputs = {id(tensor._keras_history.layer) for tensor in model.outputs}
    plan, scaled, frontier = [], {id(layer)}, [layer]
    while frontier:
        producer = frontier.pop()
        if id(producer) in outputs or not producer._outbound_nodes:
            return None
        for node in producer._outbound_nodes:
            consumer = node.layer
            if id(consumer) not in own or len(consumer._inbound_nodes) != 1:
                return None
            if type(consumer) in kernels:
                plan.append((consumer, kernels[type(consumer)]))
                continue
            inputs = consumer._inbound_nodes[0].input_tensors
            inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            from_scaled = sum(id(t._keras_history.layer) in scaled for t in inputs)
            if not (isinstance(consumer, scaling) or (type(consumer) is layers.Multiply and len(inputs) == 2)) \
                    or from_scaled != 1:
                return None
            if id(consumer) not in scaled:
                scaled.add(id(consumer))
                frontier.append(consumer)
    return plan


def _static_reshape(layer: Any) -> Callable[[Any], Any]:
    def call(inputs: Any) -> Any:
        return tf().reshape(inputs, (-1, *layer.target_shape))

    return call


@contextlib.contextmanager
def xnnpack_graph(model: Any, integer: bool) -> Iterator[Any]:
    """While converting, `model` computes the same function with ops XNNPACK runs in one partition.

    - Reshape layers (EfficientNet's squeeze-excite) reshape to a constant (-1, *target) shape: Keras'
      Reshape computes the batch size at run time (SHAPE, STRIDED_SLICE, PACK), ops XNNPACK does not take,
      which split EfficientNetB0 into 17 partitions even in float32.
    - integer: MobileNetV3's hard-swish is written as two MULs and an ADD (see _hard_swish_for_xnnpack):
      XNNPACK has no int8 HARD_SWISH, so each of them ran on TFLite's reference kernel between XNNPACK
      partitions (19 partitions for MobileNetV3-Small). Float conversions keep XNNPACK's own HARD_SWISH.
      Where the hard-swish only feeds convolutions and dense layers (through padding, pooling and
      squeeze-excite, as everywhere in Keras' MobileNetV3), its 1/6 goes into their kernels instead and it is
      x * relu6(x + 3), two int8 ops: MobileNetV3-Small int8 at 96 px ran in 0.684 ms instead of 0.784 here
      (AVX2), a full-tensor MUL by 1/6 less per hard-swish (see _fold_plan).

    The layers are changed in place for the block and restored after it, so the trained model and its
    weights are untouched (the kernels divided by 6 are tensors read in the variables' place); yields how many
    layers were rewritten, by kind (hard_swish_folded: those of hard_swish whose 1/6 went into kernels).
    """
    layers = keras().layers
    patched: list[tuple[Any, str]] = []
    kernels: list[tuple[Any, str, Any]] = []  # (layer, attribute, the variable it held)
    counts = {"reshape": 0, "hard_swish": 0, "hard_swish_folded": 0}
    for layer in model.submodules:
        if (isinstance(layer, layers.Reshape) and type(layer) is layers.Reshape
                and all(isinstance(d, int) and d > 0 for d in layer.target_shape)):
            layer.call = _static_reshape(layer)
            patched.append((layer, "call"))
            counts["reshape"] += 1
        elif integer and _is_hard_swish(layer):
            plan = _fold_plan(model, layer)
            if plan is not None and not {id(l) for l, _ in plan} & {id(l) for l, _, _ in kernels}:
                for reader, attribute in plan:  # W/6 read by a layer that received 6x: the same outputs
                    kernels.append((reader, attribute, getattr(reader, attribute)))
                    scaled = tf().convert_to_tensor(kernels[-1][2]) * (1 / 6)  # in the layer's compute dtype,
                    object.__setattr__(reader, attribute, tf().cast(scaled, reader.compute_dtype))  # as its variable reads
                layer._merge_function = _hard_swish_times_six
                counts["hard_swish_folded"] += 1
            else:
                layer._merge_function = _hard_swish_for_xnnpack
            patched.append((layer, "_merge_function"))
            counts["hard_swish"] += 1
    try:
        yield counts
    finally:
        for layer, attribute in patched:
            delattr(layer, attribute)
        for layer, attribute, variable in kernels:
            object.__setattr__(layer, attribute, variable)  # bypasses Keras' tracking, as the patch did


def _converter(model: Any, integer: bool = False) -> Any:
    """A TFLiteConverter for `model`'s inference function, with a batch dimension of any size.

    TFLiteConverter.from_keras_model first saves the whole Keras model as a SavedModel, tracing
    every layer's functions for Keras serialization: 29 of the 31 s a MobileNetV2 0.35 conversion
    took here. Converting one traced inference function over the model's variables gives the same
    graph and outputs (tested). By default the converter still lowers that function to a SavedModel
    on disk and loads it back (3.1 of 3.8 s for MobileNetV2 0.35 at 96 px); it is told not to: the
    variables are frozen in memory instead, and `_convert` writes back the serving signature and
    tensor names that route would have given (the model Keras' converter gives, tested).
    """
    tf_ = tf()
    holder = tf_.Module()
    holder.model_variables = list(model.variables)  # what the function reads; saved with it
    names = list(model.output_names)

    def serve(pixels: Any) -> dict:
        outputs = model(pixels, training=False)
        return dict(zip(names, outputs if isinstance(outputs, (list, tuple)) else [outputs]))

    spec = tf_.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype, name=model.input_names[0])
    holder.serve = tf_.function(serve, input_signature=[spec])
    with xnnpack_graph(model, integer) as rewritten:  # traced here: the function keeps the rewritten graph
        function = holder.serve.get_concrete_function()
    if any(rewritten.values()):
        log.debug("rewritten for XNNPACK: %s", rewritten)
    converter = tf_.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.experimental_lower_to_saved_model = not _one_in_one_out(model)  # see _serving_signature
    return converter


def _one_in_one_out(model: Any) -> bool:
    """Whether the model has the single input and output whose signature `_serving_signature` writes back;
    any other model is converted through a SavedModel, which names its tensors itself."""
    return len(model.inputs) == 1 and len(model.output_names) == 1


def _convert(model: Any, converter: Any) -> bytes:
    return _serving_signature(converter.convert(), model)


def _serving_signature(content: bytes, model: Any) -> bytes:
    """The converted model with Keras' serving signature and tensor names, which a conversion that
    does not go through a SavedModel leaves out: the 'serving_default' signature (input named after
    the Keras input, output after the Keras output layer), input tensor 'serving_default_<input>:0',
    output tensor 'StatefulPartitionedCall:0'. Apps that call the interpreter's signature runner need them.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    if not _one_in_one_out(model):
        return content  # converted through a SavedModel: named already
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if flat.signatureDefs:
        return content

    def tensor_map(name: str, index: int) -> Any:
        entry = flatbuffer_utils.schema_fb.TensorMapT()
        entry.name, entry.tensorIndex = name.encode(), index
        return entry

    graph = flat.subgraphs[0]
    graph.tensors[graph.inputs[0]].name = f"serving_default_{model.input_names[0]}:0".encode()
    graph.tensors[graph.outputs[0]].name = b"StatefulPartitionedCall:0"
    signature = flatbuffer_utils.schema_fb.SignatureDefT()
    signature.inputs = [tensor_map(model.input_names[0], graph.inputs[0])]
    signature.outputs = [tensor_map(model.output_names[0], graph.outputs[0])]
    signature.signatureKey, signature.subgraphIndex = b"serving_default", 0
    flat.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def convert_float32(model: Any) -> bytes:
    return _convert(model, _converter(model))


def convert_float16(model: Any) -> bytes:
    tf_ = tf()
    converter = _converter(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf_.float16]
    return _convert(model, converter)


def convert_sparse(model: Any) -> bytes:
    """float32 with pruned weights encoded as sparse tensors (a DENSIFY op each), which XNNPACK can
    run as sparse 1x1 convolutions on ARM."""
    tf_ = tf()
    converter = _converter(model)
    converter.optimizations = [tf_.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return _convert(model, converter)


def convert_dynamic(model: Any) -> bytes:
    tf_ = tf()
    converter = _converter(model)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    return _convert(model, converter)


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
    content = _convert(model, _int8_converter(model, calibration_images, io, per_channel))
    if io == "uint8":
        content = _input_conversion_in_xnnpack(_raw_pixel_input(content))
    float_ops = read_structure(content).float_ops()
    if float_ops:
        raise ExportError(f"full-integer conversion left float32 ops: {sorted(set(float_ops))}. "
                          "These layers have no int8 kernel in TFLite; replace them in the model.")
    return content


def _images(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate


def _int8_converter(model: Any, calibration_images: np.ndarray, io: str = "uint8", per_channel: bool = True) -> Any:
    tf_ = tf()
    converter = _converter(model, integer=True)
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.representative_dataset = _images(calibration_images)
    converter.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"uint8": tf_.uint8, "int8": tf_.int8, "float32": tf_.float32}[io]
    converter.inference_input_type = converter.inference_output_type = io_type
    if not per_channel:
        converter._experimental_disable_per_channel = True  # the converter's only switch for this
    return converter


def layer_errors(model: Any, calibration_images: np.ndarray, debug_images: np.ndarray, io: str = "uint8",
                 per_channel: bool = True) -> list[dict]:
    """Per-layer quantization error from tf.lite.experimental.QuantizationDebugger, worst first.

    `rmse_per_step` is the RMS difference between the float and the quantized output of each op,
    in quantization steps: about 0.29 (1/sqrt(12)) is the rounding floor; much more marks a layer
    whose range or distribution quantizes badly.
    """
    import csv
    import io as text_io

    tf_ = tf()
    debugger = tf_.lite.experimental.QuantizationDebugger(
        converter=_int8_converter(model, calibration_images, io, per_channel), debug_dataset=_images(debug_images))
    debugger.run()
    dump = text_io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(text_io.StringIO(dump.getvalue())):
        scale = float(row["scale"]) or 1.0
        rows.append({"op": row["op_name"], "tensor": row["tensor_name"],
                     "rmse_per_step": float(np.sqrt(float(row["mean_squared_error"]))) / scale,
                     "max_error_per_step": float(row["max_abs_error"]) / scale, "scale": float(row["scale"])})
    return sorted(rows, key=lambda r: -r["rmse_per_step"])


def convert_int8_mixed(model: Any, calibration_images: np.ndarray, keep_float: tuple[str, ...],
                       io: str = "uint8", per_channel: bool = True) -> bytes:
    """Integer model with the named Keras layers left in float (selective quantization).

    Not full-integer: it is exported as model_int8_mixed.tflite with float I/O.

    Raises:
        ExportError: a name in keep_float matches no layer.
    """
    tf_ = tf()
    converter = _int8_converter(model, calibration_images, io, per_channel)
    nodes = [row["tensor"] for row in layer_errors(model, calibration_images, calibration_images[:1], io, per_channel)]
    chosen, unknown = [], []
    for layer in keep_float:
        matches = [n for n in nodes if layer in n.replace(";", "/").split("/")]
        (chosen.extend(matches) if matches else unknown.append(layer))
    if unknown:
        layers = sorted({part for n in nodes for part in n.replace(";", "/").split("/")[1:2]})
        raise ExportError(f"--keep-float {', '.join(unknown)}: no such layer among the quantized ops "
                          f"({', '.join(layers)}). Use a Keras layer name from this list.")
    options = tf_.lite.experimental.QuantizationDebugOptions(denylisted_nodes=chosen)
    debugger = tf_.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=_images(calibration_images[:1]),
                                                          debug_options=options)
    return _serving_signature(debugger.get_nondebug_quantized_model(), model)


@dataclass(frozen=True)
class Calibrated:
    """What a calibrated conversion takes besides the model."""

    images: np.ndarray  # representative RGB uint8 images
    io: str = "uint8"  # the input/output type (--io)
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()  # int8_mixed: Keras layers left in float


@dataclass(frozen=True)
class Variant:
    """Everything edgeclf knows about one artifact (model_<name>.tflite)."""

    name: str
    convert: Callable[[Any, Calibrated | None], bytes]  # (model, calibration or None) -> .tflite bytes
    selected: Callable[[Any], bool]  # (BuildConfig) -> whether the build exports it
    needs_calibration: bool = False  # gets a Calibrated (the representative set)
    int8_weights: bool = False  # --max-drop gates its top-1 drop against float32
    quantization_aware: bool = False  # converted from the QAT fine-tuned model, not the trained one
    takes_io: bool = False  # its input and output have the --io type (else float32)


VARIANTS: tuple[Variant, ...] = (
    Variant("float32", lambda model, _: convert_float32(model), lambda config: True),
    Variant("int8", lambda model, c: convert_int8(model, c.images, c.io, c.per_channel),
            lambda config: config.quantize.int8, needs_calibration=True, int8_weights=True, takes_io=True),
    Variant("float16", lambda model, _: convert_float16(model), lambda config: config.quantize.float16),
    Variant("dynamic", lambda model, _: convert_dynamic(model), lambda config: config.quantize.dynamic,
            int8_weights=True),
    Variant("int8_mixed", lambda model, c: convert_int8_mixed(model, c.images, c.keep_float, c.io, c.per_channel),
            lambda config: bool(config.quantize.keep_float), needs_calibration=True, int8_weights=True),
    Variant("int8_qat", lambda model, c: convert_int8(model, c.images, c.io, c.per_channel),
            lambda config: config.quantize.qat, needs_calibration=True, int8_weights=True, quantization_aware=True,
            takes_io=True),
    Variant("float32_sparse", lambda model, _: convert_sparse(model),
            lambda config: config.prune.for_backend == "xnnpack"),
)


REFERENCE = VARIANTS[0]  # float32: every build exports it, and every other variant is compared with it


def selected_variants(config: Any) -> tuple[Variant, ...]:
    """The variants a build with this BuildConfig exports, in export order (float32 first)."""
    return tuple(variant for variant in VARIANTS if variant.selected(config))


def variant(name: str) -> Variant:
    return next(v for v in VARIANTS if v.name == name)


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


def _input_conversion_in_xnnpack(content: bytes) -> bytes:
    """The uint8 pixels' conversion to int8 as DEQUANTIZE (uint8 -> float32) then QUANTIZE (float32 -> int8),
    two ops XNNPACK runs, where the converter writes one uint8 -> int8 QUANTIZE, which XNNPACK does not take.

    TFLite's own kernel for that QUANTIZE computes each pixel in scalar fixed-point arithmetic on x86:
    188 us of MobileNetV3-Small's 3.6 ms int8 run at 224 px here (AVX2, 1 thread), the float32 model having
    no such op; XNNPACK's two vectorized passes took 33 us. Done only where the requantization is exactly
    x - 128 (int8 scale 1, zero point -128: calibration saw pixels 0 and 255), which every kernel computes
    without rounding, so the outputs are the same bit for bit; otherwise the graph is left as converted.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    schema = flatbuffer_utils.schema_fb
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    pixels = graph.inputs[0]
    readers = [op for op in graph.operators if pixels in list(op.inputs)]
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]
    if len(readers) != 1 or codes[readers[0].opcodeIndex] != schema.BuiltinOperator.QUANTIZE:
        return content
    quantize = readers[0]
    target = graph.tensors[quantize.outputs[0]]
    if (target.type != schema.TensorType.INT8 or list(target.quantization.scale) != [1.0]
            or list(target.quantization.zeroPoint) != [-128]):
        log.debug("input QUANTIZE to scale %s, zero point %s: not an exact shift, kept",
                  list(target.quantization.scale), list(target.quantization.zeroPoint))
        return content
    if schema.BuiltinOperator.DEQUANTIZE not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 1
        model.operatorCodes.append(code)
        codes.append(schema.BuiltinOperator.DEQUANTIZE)
    source = graph.tensors[pixels]
    values = schema.TensorT()
    values.name = source.name + b"_float32"
    values.type, values.buffer = schema.TensorType.FLOAT32, 0
    values.shape, values.shapeSignature = source.shape, source.shapeSignature
    graph.tensors.append(values)
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex = codes.index(schema.BuiltinOperator.DEQUANTIZE)
    dequantize.inputs, dequantize.outputs = [pixels], [len(graph.tensors) - 1]
    quantize.inputs = [len(graph.tensors) - 1]
    graph.operators.insert(graph.operators.index(quantize), dequantize)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_metadata(content: bytes, name: str, config: Any, classes: tuple[str, ...], size: int) -> bytes:
    """Packs TFLite Metadata (labels, RGB 0-255 input, mean 0 / std 1) into artifact `name`."""
    from edgeclf import __version__
    from edgeclf.runtime import metadata as tflite_metadata

    io_text = {"uint8": "uint8 pixels, scale 1, zero point 0", "int8": "int8 values (see the input quantization)",
               "float32": "float32 pixels"}[config.quantize.io] if variant(name).takes_io else "float32 pixels"
    description = (f"{config.model.name} image classifier ({len(classes)} classes) built by edgeclf "
                   f"{__version__}. Input: RGB pixels 0-255 as {io_text}, resized to {size}x{size}; "
                   "the model normalizes them itself. Output: class probabilities.")
    return tflite_metadata.write(content, tflite_metadata.ModelMetadata(
        name=f"edgeclf {config.model.name} {size}px {name}", labels=tuple(classes),
        description=description, version=config.export.version, author=config.export.author,
        license=config.export.license))
