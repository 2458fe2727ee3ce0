"""Reads a .tflite file's structure (operators, tensor types, constant weights) without running it.

Parsed with the `flatbuffers` package alone (field numbers from the TFLite schema.fbs), so it works
with any interpreter backend, and the interpreter's delegates never hide the real op list.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from flatbuffers import encode, number_types
from flatbuffers.table import Table

from edgeclf.runtime._op_names import OP_NAMES

# TensorType enum values of the TFLite schema that matter here.
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16", 6: "bool"}
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
WEIGHT_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})


def root(content: bytes) -> Table:
    """The root table (Model) of a flatbuffer."""
    return Table(content, encode.Get(number_types.UOffsetTFlags.packer_type, content, 0))


def _offset(table: Table, field: int) -> int:
    return table.Offset(4 + 2 * field)


def tables(table: Table, field: int) -> list[Table]:
    """The tables in vector field number `field`."""
    offset = _offset(table, field)
    if not offset:
        return []
    start = table.Vector(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))]


def scalar(table: Table, field: int, flags: type, default: int = 0) -> int:
    offset = _offset(table, field)
    return table.Get(flags, offset + table.Pos) if offset else default


def string(table: Table, field: int) -> str:
    offset = _offset(table, field)
    return table.String(offset + table.Pos).decode("utf-8", "replace") if offset else ""


def _span(table: Table, field: int, item: int) -> tuple[int, int]:
    """(start, byte length) of a vector field, checked to lie inside the file."""
    offset = _offset(table, field)
    if not offset:
        return 0, 0
    start, length = table.Vector(offset), table.VectorLen(offset) * item
    if start < 0 or start + length > len(table.Bytes):
        raise CorruptModel(f"a vector runs past the end of the file (bytes {start}-{start + length} of {len(table.Bytes)})")
    return start, length


def vector_bytes(table: Table, field: int) -> bytes:
    start, length = _span(table, field, 1)
    return bytes(table.Bytes[start:start + length])


def int_vector(table: Table, field: int) -> tuple[int, ...]:
    start, length = _span(table, field, 4)
    return tuple(np.frombuffer(bytes(table.Bytes[start:start + length]), dtype="<i4").tolist())


class CorruptModel(ValueError):
    """A .tflite file whose flatbuffer does not hold together (truncated, flipped bytes, not a model)."""


# Bytes per element of each TensorType (schema.fbs); 0 = variable size (strings, resources, variants).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 0, 14: 0, 15: 4,
               16: 2, 17: 0, 18: 2}
_MAX_ELEMENTS = 1 << 31


_ZERO_POINT_RANGES = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 17: (-8, 7)}  # uint8, int8, int16, int4


def _check_quantization(tensor: Table, kind: int, shape: tuple[int, ...]) -> None:
    """Scales must be finite and positive, zero points inside the type's range, one pair per channel."""
    offset = _offset(tensor, 4)
    if not offset:
        return
    quantization = Table(tensor.Bytes, tensor.Indirect(offset + tensor.Pos))
    start, length = _span(quantization, 2, 4)
    scales = np.frombuffer(bytes(tensor.Bytes[start:start + length]), dtype="<f4")
    start, length = _span(quantization, 3, 8)
    zero_points = np.frombuffer(bytes(tensor.Bytes[start:start + length]), dtype="<i8")
    if len(scales) and not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
        raise CorruptModel(f"a quantized tensor has an invalid scale {scales[:4].tolist()}")
    low, high = _ZERO_POINT_RANGES.get(kind, (np.iinfo(np.int64).min, np.iinfo(np.int64).max))
    if len(zero_points) and (zero_points.min() < low or zero_points.max() > high):
        raise CorruptModel(f"a quantized tensor has a zero point outside [{low}, {high}]: {zero_points[:4].tolist()}")
    if len(scales) > 1:
        axis = scalar(quantization, 6, number_types.Int32Flags)
        if not 0 <= axis < len(shape) or shape[axis] != len(scales) or len(zero_points) not in (0, len(scales)):
            raise CorruptModel(f"per-channel quantization of {len(scales)} scales does not fit a tensor of shape "
                               f"{shape} along axis {axis}")


def _check_string(table: Table, field: int) -> None:
    """A string field must lie inside the file and end in its NUL terminator."""
    offset = _offset(table, field)
    if not offset:
        return
    start = table.Indirect(offset + table.Pos)
    if not 0 <= start <= len(table.Bytes) - 4:
        raise CorruptModel("a name points outside the file")
    length = encode.Get(number_types.UOffsetTFlags.packer_type, table.Bytes, start)
    end = start + 4 + length
    if end >= len(table.Bytes) or table.Bytes[end] != 0:
        raise CorruptModel("a name runs past the end of the file or lacks its terminator")


def _check_tensor(tensor: Table, buffers: list[Table]) -> None:
    """A tensor's type, shape and constant data must agree, or kernels index out of their buffers."""
    _check_string(tensor, 3)  # the name: interpreters read it as a C string
    kind = scalar(tensor, 1, number_types.Int8Flags)
    if kind not in _TYPE_BYTES:
        raise CorruptModel(f"a tensor has type {kind}, which TFLite does not define")
    shape = int_vector(tensor, 0)
    if any(dim < 0 for dim in shape):
        raise CorruptModel(f"a tensor has a negative dimension {shape}")
    elements = 1
    for dim in shape:
        elements *= dim
    if elements > _MAX_ELEMENTS:
        raise CorruptModel(f"a tensor of shape {shape} is larger than any interpreter allocates")
    _check_quantization(tensor, kind, shape)
    index = scalar(tensor, 2, number_types.Uint32Flags)
    if index >= max(1, len(buffers)):
        raise CorruptModel("a tensor refers to a buffer that does not exist")
    if not buffers or _offset(tensor, 6):  # no buffers at all, or a sparse tensor (its data is compressed)
        return
    buffer = buffers[index]
    _, length = _span(buffer, 0, 1)
    size = length if _offset(buffer, 0) else scalar(buffer, 2, number_types.Uint64Flags)  # inline, or past the flatbuffer
    width = _TYPE_BYTES[kind]
    expected = (elements + 1) // 2 if kind == 17 else elements * width  # int4 packs two per byte
    if size and width and size != expected:
        raise CorruptModel(f"a constant tensor of shape {shape} holds {size} bytes instead of {expected}")


def validate(content: bytes) -> None:
    """Walks every table and vector an interpreter would follow, inside the file's bounds.

    Some interpreter builds (tflite-runtime 2.14) crash natively on a truncated model; checking in
    Python first turns that into an exception.

    Raises:
        CorruptModel: with the first inconsistency found.
    """
    import struct

    try:
        model = root(content)
        codes = tables(model, 1)
        for code in codes:
            scalar(code, 3, number_types.Int32Flags)
        buffers = tables(model, 4)
        for buffer in buffers:
            _span(buffer, 0, 1)  # bounds only: copying every weight here would double the load's memory traffic
            offset, size = scalar(buffer, 1, number_types.Uint64Flags), scalar(buffer, 2, number_types.Uint64Flags)
            if offset + size > len(content):
                raise CorruptModel(f"a buffer's data (bytes {offset}-{offset + size}) lies past the end of the file")
        graphs = tables(model, 2)
        if not graphs:
            raise CorruptModel("no subgraph")
        for graph in graphs:
            tensors = tables(graph, 0)
            for tensor in tensors:
                _check_tensor(tensor, buffers)
            for index in (*int_vector(graph, 1), *int_vector(graph, 2)):
                if not 0 <= index < len(tensors):
                    raise CorruptModel(f"graph input/output {index} is not one of its {len(tensors)} tensors")
            for op in tables(graph, 3):
                if scalar(op, 0, number_types.Uint32Flags) >= len(codes):
                    raise CorruptModel("an operator refers to an operator code that does not exist")
                for index in (*int_vector(op, 1), *int_vector(op, 2)):
                    if not -1 <= index < len(tensors):
                        raise CorruptModel(f"an operator refers to tensor {index} of {len(tensors)}")
    except (struct.error, IndexError, OverflowError, TypeError) as exc:  # flatbuffers' errors on wild offsets
        raise CorruptModel(f"an offset points outside the file ({exc})") from exc


@dataclass(frozen=True)
class Operator:
    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    inputs: tuple[int, ...]

    @property
    def touches_float(self) -> bool:
        return "float32" in self.input_types or "float32" in self.output_types


@dataclass(frozen=True)
class ModelStructure:
    operators: tuple[Operator, ...]
    weights: dict[str, np.ndarray]  # "<op index>:<OP>" -> constant kernel of a weight op

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.name for op in self.operators).items()))

    def float_ops(self) -> list[str]:
        """Ops computing in float32, other than the quantize/dequantize at the model's edges."""
        return [op.name for op in self.operators if op.touches_float and op.name not in ("QUANTIZE", "DEQUANTIZE")]

    def weight_sparsity(self) -> float | None:
        """Fraction of exact zeros over all kernels of conv / fully-connected ops."""
        total = sum(w.size for w in self.weights.values())
        if total == 0:
            return None
        return float(sum(int(np.count_nonzero(w == 0)) for w in self.weights.values()) / total)


def read_structure(content: bytes) -> ModelStructure:
    """Parses operators and weight tensors of the first subgraph.

    Field numbers (schema.fbs): Model.operator_codes 1, subgraphs 2, buffers 4; SubGraph.tensors 0,
    operators 3; Tensor.type 1, buffer 2; Operator.opcode_index 0, inputs 1, outputs 2;
    OperatorCode.deprecated_builtin_code 0, builtin_code 3; Buffer.data 0.
    """
    model = root(content)
    codes = [max(scalar(c, 0, number_types.Int8Flags), scalar(c, 3, number_types.Int32Flags))
             for c in tables(model, 1)]
    graph = tables(model, 2)[0]
    tensors = tables(graph, 0)
    buffers = tables(model, 4)
    types = [scalar(t, 1, number_types.Int8Flags) for t in tensors]

    def type_name(index: int) -> str:
        return _TENSOR_TYPES.get(types[index], f"type{types[index]}")

    operators, weights = [], {}
    for op_index, op in enumerate(tables(graph, 3)):
        name = OP_NAMES.get(codes[scalar(op, 0, number_types.Uint32Flags)], "CUSTOM")
        inputs = tuple(i for i in int_vector(op, 1) if i >= 0)
        outputs = int_vector(op, 2)
        operators.append(Operator(name, tuple(map(type_name, inputs)), tuple(map(type_name, outputs)), inputs))
        if name in WEIGHT_OPS and len(inputs) > 1:
            kernel_tensor = tensors[inputs[1]]
            dtype = _NUMPY_TYPES.get(types[inputs[1]])
            data = vector_bytes(buffers[scalar(kernel_tensor, 2, number_types.Uint32Flags)], 0)
            if dtype is not None and data:
                weights[f"{op_index}:{name}"] = np.frombuffer(data, dtype=dtype)
    return ModelStructure(tuple(operators), weights)
