"""A loaded .tflite classifier: I/O details, labels, and predict() on RGB uint8 images."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from edgeclf.runtime import metadata
from edgeclf.runtime._backend import get_backend
from edgeclf.runtime._native_log import quiet_native_stderr
from edgeclf.runtime.errors import UserError
from edgeclf.runtime.flatbuffer import CorruptModel, ModelStructure, read_structure, validate
from edgeclf.runtime.preprocess import resize

log = logging.getLogger(__name__)


BATCH_SIZE = 32


# Backends that crash natively on some malformed files our structural checks let through (fuzzed:
# tflite-runtime 2.14 on 19 of 450 damaged copies of a small model; LiteRT 2.3 on none of 1,850).
UNVERIFIED_BACKENDS = frozenset({"tflite_runtime"})


def run_once(backend, content: bytes) -> None:
    """Loads a model and runs it once on a zero input, reading every output: a test load (names and
    quantization are read too, where damaged files have crashed interpreters)."""
    interpreter = backend.interpreter_class(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    for output in interpreter.get_output_details():
        interpreter.get_tensor(output["index"])


def _probe(path: Path, content: bytes, backend) -> None:
    """Loads and runs the model once in a forked child first, so a native crash kills the child, not us.

    Raises:
        ModelError: the child died by a signal.
    """
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # child: only the interpreter runs here, then it exits without cleanup
        code = 1
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the parent reports; the child's native chatter goes nowhere
            run_once(backend, content)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise ModelError(f"{path}: the {backend.name} interpreter crashes on this file (signal "
                         f"{os.WTERMSIG(status)} in a test load): it is damaged. Export it again or copy the complete file.")


class ModelError(UserError, ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor. scale == 0 means not quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(detail["name"], tuple(int(d) for d in detail["shape"]),
                      np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def read_labels(path: str | os.PathLike) -> list[str]:
    """One label per line; blank lines at the end are ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


class Model:
    """A TFLite image classifier that takes RGB pixels 0-255.

    Args:
        path: the .tflite file.
        num_threads: interpreter threads (None: the backend's default).
        labels: label list; default: `labels.txt` beside the model, else class indices.

    Raises:
        ModelError: missing file, not a TFLite model, or not an image classifier.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 labels: list[str] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file. Pass the path of a .tflite file.")
        self.content = self.path.read_bytes()
        if len(self.content) < 8 or self.content[4:8] != b"TFL3":
            raise ModelError(f"{self.path}: not a TFLite model (no TFL3 identifier). "
                             "Pass a .tflite file written by `edgeclf build` or the TFLite converter.")
        try:
            validate(self.content)
        except CorruptModel as exc:
            raise ModelError(f"{self.path}: not a valid TFLite model, truncated or corrupt ({exc}). "
                             "Export it again or copy the complete file.") from exc
        self.backend = get_backend()
        self.num_threads = num_threads
        inputs, outputs = self._open_interpreter()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3:
            shapes = [[int(v) for v in d["shape"]] for d in inputs]
            raise ModelError(f"{self.path}: expected one RGB image input of shape [1, H, W, 3]; "
                             f"received inputs {shapes}. edgeclf runs image classifiers only.")
        self.input = _tensor_info(inputs[0])
        self.output = _tensor_info(outputs[0])
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        self._batched = None  # the batch interpreter, created on first use; False when refused
        try:
            self.metadata = metadata.read(self.content)
        except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parse failure means "no metadata"
            log.warning("%s: unreadable TFLite metadata ignored (%s)", self.path, exc)
            self.metadata = None
        if self.metadata is None:
            log.warning("%s: no TFLite metadata; assuming RGB pixels 0-255 in. "
                        "Add it with `edgeclf metadata %s --labels labels.txt`.", self.path, self.path.name)
        # (pixel - mean) / std, from the metadata: 0 and 1 for edgeclf models, which normalize inside.
        self.mean = np.asarray(self.metadata.mean if self.metadata else (0.0,), dtype=np.float32)
        self.std = np.asarray(self.metadata.std if self.metadata else (1.0,), dtype=np.float32)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.shape not in ((1,), (3,)) or not np.all(np.isfinite(values)) or (name == "std" and np.any(values == 0)):
                raise ModelError(f"{self.path}: its metadata gives normalization {name} {values.tolist()[:6]}; expected "
                                 "1 or 3 finite values (std non-zero). The file is damaged: fix it with "
                                 f"`edgeclf metadata {self.path.name} --labels labels.txt --mean 0 --std 1`.")
        self.labels = labels if labels is not None else self._default_labels()

    def _open_interpreter(self) -> tuple[list[dict], list[dict]]:
        """Creates the interpreter (after a test load in a child process for backends that may crash on bad
        files); returns its input and output details."""
        if self.backend.name in UNVERIFIED_BACKENDS:
            _probe(self.path, self.content, self.backend)
        try:
            with quiet_native_stderr():
                self._interpreter = self.backend.interpreter_class(model_content=self.content,
                                                                   num_threads=self.num_threads)
                self._interpreter.allocate_tensors()
            return self._interpreter.get_input_details(), self._interpreter.get_output_details()
        except (ValueError, RuntimeError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
            raise ModelError(f"{self.path}: the interpreter refused this model ({exc}).") from exc

    def _default_labels(self) -> list[str]:
        """Labels from the metadata, else labels.txt beside the model, else class indices."""
        count = self.num_classes
        if self.metadata is not None and len(self.metadata.labels) == count:
            return list(self.metadata.labels)
        labels_file = self.path.with_name("labels.txt")
        if labels_file.is_file():
            labels = read_labels(labels_file)
            if len(labels) == count:
                return labels
            log.warning("%s has %d labels but the model has %d outputs; using class indices.",
                        labels_file, len(labels), count)
        else:
            log.warning("%s: no labels in its metadata and no labels.txt beside it; using class indices.", self.path)
        return [str(i) for i in range(count)]

    @property
    def raw_pixels(self) -> bool:
        """True when the model takes pixels 0-255 as they are (mean 0, std 1)."""
        return bool(np.all(self.mean == 0.0) and np.all(self.std == 1.0))

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input.shape[1], self.input.shape[2]

    @property
    def num_classes(self) -> int:
        return self.output.shape[-1]

    @cached_property
    def structure(self) -> ModelStructure:
        return read_structure(self.content)

    @property
    def full_integer(self) -> bool:
        """No float op: the int8 kernels run (what int8 speed depends on)."""
        return not self.structure.float_ops()

    def describe(self) -> dict:
        """What `edgeclf inspect` shows: size, backend, I/O, labels, ops, float ops, sparsity, metadata."""
        structure = self.structure
        return {"path": str(self.path), "bytes": len(self.content),
                "backend": f"{self.backend.name} {self.backend.version}",
                "input": self.input.as_dict(), "output": self.output.as_dict(),
                "labels": self.labels, "ops": structure.op_counts(),
                "float_ops": len(structure.float_ops()), "weight_sparsity": structure.weight_sparsity(),
                "metadata": self.metadata.as_dict() if self.metadata else None}

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 image (any size) -> the (1, H, W, 3) input tensor in the model's dtype."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image; received {image.dtype} {image.shape}")
        return self._to_input(resize(image, self.input_size)[None])

    def _to_input(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 pixels at the input size -> the input tensor in the model's dtype."""
        dtype = np.dtype(self.input.dtype)
        raw = self.raw_pixels
        if raw and dtype == np.uint8 and self.input.scale == 1.0 and self.input.zero_point == 0:
            return pixels  # raw pixels in: the edgeclf default for int8 models
        values = pixels.astype(np.float32)
        if not raw:  # in place: a 224x224 camera frame is normalized without two more copies
            values -= self.mean
            values /= self.std
        if not self.input.quantized:
            return values.astype(dtype, copy=False)
        info = np.iinfo(dtype)
        quantized = np.round(values / self.input.scale + self.input.zero_point)
        return np.clip(quantized, info.min, info.max).astype(dtype)

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Runs one prepared input tensor; returns the raw output (1, C)."""
        self._interpreter.set_tensor(self._input_index, tensor)
        try:  # free in Python 3.11 unless raised
            self._interpreter.invoke()
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: the interpreter failed running this model ({exc}); the file is damaged "
                             "or needs ops this backend lacks.") from exc
        return self._interpreter.get_tensor(self._output_index)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        if not self.output.quantized:
            return raw.astype(np.float32)
        return ((raw.astype(np.float32) - self.output.zero_point) * self.output.scale).astype(np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class scores for RGB uint8 images.

        Args:
            images: (H, W, 3) or (N, H, W, 3) uint8 RGB, any H and W (resized to the input).

        Returns:
            (N, num_classes) float32 scores (dequantized for integer models).
        """
        batch = images[None] if images.ndim == 3 else images
        scores = np.empty((len(batch), self.num_classes), dtype=np.float32)
        batched = self._batched_interpreter() if len(batch) > 1 else None
        if batched is None:
            for i, image in enumerate(batch):
                scores[i] = self.dequantize(self.invoke(self.prepare(image)))[0]
            return scores
        size = BATCH_SIZE
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            if chunk.shape[1:3] != self.input_size:
                chunk = np.stack([resize(image, self.input_size) for image in chunk])
            tensor = self._to_input(chunk)
            if len(tensor) < size:  # pad the last chunk: resizing the interpreter again would cost more
                tensor = np.concatenate([tensor, np.zeros((size - len(tensor), *tensor.shape[1:]), tensor.dtype)])
            batched.set_tensor(self._input_index, tensor)
            try:
                batched.invoke()
            except RuntimeError as exc:
                raise ModelError(f"{self.path}: the interpreter failed running this model ({exc}).") from exc
            scores[start:start + len(chunk)] = self.dequantize(batched.get_tensor(self._output_index))[:len(chunk)]
        return scores

    def _batched_interpreter(self):
        """A second interpreter with a batch dimension of BATCH_SIZE, or None when the model refuses one.

        Batching amortizes Python's per-invoke overhead when evaluating folders; bench and camera
        keep the batch-1 interpreter, which is what a device runs.
        """
        if self._batched is None:
            self._batched = False
            try:
                with quiet_native_stderr():
                    interpreter = self.backend.interpreter_class(model_content=self.content, num_threads=self.num_threads)
                    interpreter.resize_tensor_input(self._input_index, [BATCH_SIZE, *self.input.shape[1:]], strict=True)
                    interpreter.allocate_tensors()
                output_shape = interpreter.get_output_details()[0]["shape"]
                if output_shape[0] == BATCH_SIZE:
                    self._batched = interpreter
            except (ValueError, RuntimeError) as exc:
                log.debug("%s: no batched inference (%s); using one image per invoke", self.path, exc)
        return self._batched or None

    def top_k(self, scores: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k best (label, score) pairs of one score vector."""
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.labels[i], float(scores[i])) for i in order]
