"""How the interpreter runs a model: which ops XNNPACK takes, which stay on the built-in kernels, how many
XNNPACK partitions the graph splits into.

Every op XNNPACK does not take runs on TFLite's own kernel between two XNNPACK partitions (int8 HARD_SWISH,
for one, has only the reference kernel), so an int8 model with ops outside can be slower than float32.
Read from the interpreter itself after allocate_tensors(), where XNNPACK has been applied: each
DELEGATE node is one partition, and the model's ops it replaced are those between its inputs and outputs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

DELEGATE = "DELEGATE"


@dataclass(frozen=True)
class Delegation:
    """XNNPACK's share of one model's ops, as the interpreter applied it."""

    partitions: int  # XNNPACK partitions (DELEGATE nodes); 1 is the whole graph in one
    ops: int  # the model's ops
    delegated: dict[str, int]  # op type -> count run inside XNNPACK
    outside: dict[str, int]  # op type -> count on the built-in kernels
    edge_only: bool  # every op outside reads the graph's input or writes its output (no XNNPACK split)

    @property
    def outside_count(self) -> int:
        return sum(self.outside.values())

    @property
    def one_partition(self) -> bool:
        """One XNNPACK partition, the ops outside it (if any) only at the graph's input and output."""
        return self.partitions == 1 and self.edge_only

    def as_dict(self) -> dict:
        return {"xnnpack_partitions": self.partitions, "ops": self.ops, "delegated": self.delegated,
                "outside": self.outside, "outside_only_at_edges": self.edge_only}

    def summary(self) -> str:
        """'XNNPACK 1 partition, 106 of 109 ops; outside: QUANTIZE x2, SOFTMAX x1 (at the edges)'."""
        inside = sum(self.delegated.values())
        text = (f"XNNPACK {self.partitions} partition{'s' * (self.partitions != 1)}, {inside} of {self.ops} ops")
        if not self.outside:
            return text + "; none outside"
        where = "at the input/output" if self.edge_only else "between partitions"
        return text + "; outside (built-in kernels, " + where + "): " + ", ".join(
            f"{name} x{count}" for name, count in self.outside.items())


def analyze(interpreter) -> Delegation:
    """The delegation of an interpreter on which allocate_tensors() has run.

    The interpreter lists the model's own ops followed by one DELEGATE node per partition. An op belongs
    to a partition when a path from the partition's outputs back to its inputs passes through it.
    """
    nodes = interpreter._get_ops_details()  # the only per-node listing the Python interpreters expose
    delegates = [node for node in nodes if node["op_name"] == DELEGATE]
    model_ops = [node for node in nodes if node["op_name"] != DELEGATE]
    by_index = {node["index"]: node for node in model_ops}
    producer = {int(t): node["index"] for node in model_ops for t in node["outputs"]}
    inside: set[int] = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        pending, seen = [int(t) for t in delegate["outputs"]], set()
        while pending:
            tensor = pending.pop()
            if tensor in boundary or tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            index = producer[tensor]
            if index not in inside:
                inside.add(index)
                pending.extend(int(t) for t in by_index[index]["inputs"] if t >= 0)
    outside = [node for node in model_ops if node["index"] not in inside]
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    graph_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    edges = _edge_ops(outside, graph_inputs, graph_outputs, producer, model_ops)
    return Delegation(
        partitions=len(delegates), ops=len(model_ops),
        delegated=dict(sorted(Counter(node["op_name"] for node in model_ops if node["index"] in inside).items())),
        outside=dict(sorted(Counter(node["op_name"] for node in outside).items())),
        edge_only=all(node["index"] in edges for node in outside))


def _edge_ops(outside: list[dict], graph_inputs: set[int], graph_outputs: set[int],
              producer: dict[int, int], model_ops: list[dict]) -> set[int]:
    """The ops outside XNNPACK in a chain of such ops from the graph's input (the input QUANTIZE) or to its
    output (int8 SOFTMAX, the output QUANTIZE): each costs one pass over a small tensor and splits nothing."""
    readers: dict[int, list[int]] = {}
    for node in model_ops:
        for t in node["inputs"]:
            readers.setdefault(int(t), []).append(node["index"])
    edges: set[int] = set()
    changed = True
    while changed:
        changed = False
        for node in outside:
            if node["index"] in edges:
                continue
            computed = [int(t) for t in node["inputs"] if int(t) in producer or int(t) in graph_inputs]
            from_input = bool(computed) and all(t in graph_inputs or producer[t] in edges for t in computed)
            to_output = all(t in graph_outputs or (readers.get(t) and all(r in edges for r in readers[t]))
                            for t in (int(x) for x in node["outputs"]))
            if from_input or to_output:
                edges.add(node["index"])
                changed = True
    return edges


def read(content: bytes, backend=None, num_threads: int = 1) -> Delegation | None:
    """Loads `content` in the runtime's interpreter (XNNPACK on, as every edgeclf run has it) and analyzes it;
    None when the backend's interpreter does not list its nodes."""
    from edgeclf.runtime._backend import get_backend
    from edgeclf.runtime._native_log import quiet_native_stderr

    backend = backend or get_backend()
    with quiet_native_stderr():
        interpreter = backend.interpreter_class(model_content=content, num_threads=num_threads)
        interpreter.allocate_tensors()
    if not hasattr(interpreter, "_get_ops_details"):
        return None
    return analyze(interpreter)
