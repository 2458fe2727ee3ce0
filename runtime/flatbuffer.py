"""Reads a .tflite file's structure (operators, tensor types, constant weights) without running it.

Uses the schema bindings that ai_edge_litert ships (or TensorFlow's), so the interpreter's
delegates never hide the real op list.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

# TensorType enum values of the TFLite schema that matter here.
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16", 6: "bool"}
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
WEIGHT_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})


class SchemaUnavailable(ImportError):
    """Neither ai_edge_litert nor TensorFlow provides the TFLite schema bindings."""


@functools.lru_cache(maxsize=1)
def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError as exc:
            raise SchemaUnavailable(
                "Reading the op list needs the TFLite schema bindings shipped with ai-edge-litert: "
                "`pip install ai-edge-litert`."
            ) from exc
    return schema


@functools.lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    ops = _schema().BuiltinOperator
    return {value: name for name, value in vars(ops).items() if not name.startswith("_")}


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
    """Parses operators and weight tensors from .tflite bytes (first subgraph)."""
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    names = _op_names()

    def tensor_type(index: int) -> str:
        return _TENSOR_TYPES.get(graph.Tensors(index).Type(), f"type{graph.Tensors(index).Type()}")

    operators, weights = [], {}
    for op_index in range(graph.OperatorsLength()):
        op = graph.Operators(op_index)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = tuple(i for i in op.InputsAsNumpy().tolist() if i >= 0) if op.InputsLength() else ()
        outputs = tuple(op.OutputsAsNumpy().tolist()) if op.OutputsLength() else ()
        operators.append(Operator(name, tuple(map(tensor_type, inputs)), tuple(map(tensor_type, outputs)), inputs))
        if name in WEIGHT_OPS and len(inputs) > 1:
            kernel = _constant(model, graph.Tensors(inputs[1]))
            if kernel is not None:
                weights[f"{op_index}:{name}"] = kernel
    return ModelStructure(tuple(operators), weights)


def _constant(model: Any, tensor: Any) -> np.ndarray | None:
    buffer = model.Buffers(tensor.Buffer())
    dtype = _NUMPY_TYPES.get(tensor.Type())
    if buffer is None or dtype is None or buffer.DataLength() == 0:
        return None
    return np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype)
