"""MobileNetV2 test artifacts for the benchmarks: float32 and int8, random weights (latency does not need trained ones)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

VARIANTS = ((1.0, 224), (0.35, 96))


def build_models(folder: Path, variants: tuple[tuple[float, int], ...] = VARIANTS,
                 kinds: tuple[str, ...] = ("float32", "int8")) -> dict[str, Path]:
    """Writes mobilenet_v2_<alpha>_<size>_<kind>.tflite files (with metadata) into `folder`."""
    from edgeclf.runtime.metadata import ModelMetadata, write
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.export import convert_float32, convert_int8
    from edgeclf.toolchain.models import create_model

    keras().utils.set_random_seed(0)
    labels = ModelMetadata(name="mobilenet_v2 random weights", labels=tuple(str(i) for i in range(10)))
    models = {}
    for alpha, size in variants:
        model = create_model(ModelConfig(name="mobilenet_v2", alpha=alpha, weights="none"), 10, size)
        for kind in kinds:
            if kind == "float32":
                content = convert_float32(model)
            else:
                calibration = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
                content = convert_int8(model, calibration)
            path = folder / f"mobilenet_v2_{alpha}_{size}_{kind}.tflite"
            path.write_bytes(write(content, labels))
            models[path.stem] = path
    return models
