"""Finds a TFLite interpreter: ai_edge_litert, then tflite_runtime, then tensorflow.lite.

TensorFlow is the last resort and is imported only when neither light backend imports,
so the runtime starts fast on a Raspberry Pi.
"""
from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from typing import Any

from edgeclf.runtime.errors import UserError

log = logging.getLogger(__name__)


class BackendError(UserError, RuntimeError):
    """No TFLite interpreter could be imported."""


@dataclass(frozen=True)
class Backend:
    name: str
    version: str
    interpreter_class: Any


def _try_litert() -> Backend:
    from ai_edge_litert.interpreter import Interpreter

    module = importlib.import_module("ai_edge_litert")
    return Backend("ai_edge_litert", getattr(module, "__version__", "unknown"), Interpreter)


def _try_tflite_runtime() -> Backend:
    from tflite_runtime.interpreter import Interpreter

    module = importlib.import_module("tflite_runtime")
    return Backend("tflite_runtime", getattr(module, "__version__", "unknown"), Interpreter)


def _try_tensorflow() -> Backend:
    import tensorflow as tf  # last resort: slow to import, large

    return Backend("tensorflow.lite", tf.__version__, tf.lite.Interpreter)


_CANDIDATES = (_try_litert, _try_tflite_runtime, _try_tensorflow)


@functools.lru_cache(maxsize=None)
def get_backend() -> Backend:
    """Returns the first interpreter backend that imports.

    Raises:
        BackendError: none imports; the message says what to install.
    """
    failures = []
    for candidate in _CANDIDATES:
        try:
            backend = candidate()
        except ImportError as exc:  # includes numpy ABI mismatches surfaced as ImportError
            failures.append(f"{candidate.__name__.removeprefix('_try_')}: {exc}")
            continue
        log.debug("TFLite backend: %s %s", backend.name, backend.version)
        return backend
    raise BackendError(
        "No TFLite interpreter could be imported ("
        + "; ".join(failures)
        + "). Install one with `pip install ai-edge-litert` (recommended). "
        "tflite-runtime 2.14 also works but needs numpy<2: `pip install tflite-runtime \"numpy<2\"`."
    )
