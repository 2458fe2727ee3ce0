"""The one place that imports TensorFlow, tf_keras and tfmot.

tfmot 0.8.1 needs Keras 2, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is
first imported; every toolchain module gets TensorFlow through this module.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

from edgeclf.runtime.errors import UserError

TRAIN_INSTALL = 'pip install "edgeclf[train]"'


class MissingTrainingDependencies(UserError, ImportError):
    """TensorFlow, tf_keras or tfmot is not installed; the message has the pip command."""


def _import(name: str) -> ModuleType:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16/AMX. On an
    # AVX2 EPYC they trained 96 px epochs 1.9x (cnn) and 1.4x (MobileNetV2 0.35) faster, run to run
    # identical under op determinism (measured here). TF_ENABLE_ONEDNN_OPTS=0 turns them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    # QuantizationDebugger runs tf.lite.Interpreter, which warns that it is deprecated: ours to know, not the user's
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning)
    # The in-memory conversion (export._converter) with uint8/int8 I/O asks for input statistics that only the old
    # TOCO path used; calibration sets the input's quantization, so the warning says nothing about the artifact
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected", category=UserWarning)
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        raise MissingTrainingDependencies(
            f"edgeclf build needs TensorFlow, tf-keras and tensorflow-model-optimization ({exc}). "
            f"Install them with: {TRAIN_INSTALL}") from exc


def keras_home() -> str:
    """Where Keras keeps downloaded weights and datasets: $KERAS_HOME, else ~/.keras."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def require_training_dependencies() -> None:
    """Fails fast, before any work, when the training extras are not installed (no import cost)."""
    missing = [name for name in ("tensorflow", "tf_keras", "tensorflow_model_optimization")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingTrainingDependencies(
            f"edgeclf build needs TensorFlow, tf-keras and tensorflow-model-optimization "
            f"(not installed: {', '.join(missing)}). Install them with: {TRAIN_INSTALL}")


def tf() -> ModuleType:
    module = _import("tensorflow")
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise MissingTrainingDependencies(
            "TensorFlow was imported with TF_USE_LEGACY_KERAS unset, so tfmot cannot prune or quantize. "
            "Set TF_USE_LEGACY_KERAS=1 before importing TensorFlow.")
    return module


def keras() -> ModuleType:
    tf()
    return _import("tf_keras")


def tfmot() -> ModuleType:
    keras()
    return _import("tensorflow_model_optimization")
